"""RESSTORE imaging-biomarker pipeline.

BIDS MRI of a stroke cell-therapy trial in, a blinded, quality-controlled
feature table and treatment-by-visit models out. All science lives in this
package as pure functions; ``workflow/`` only wires them together.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("resstore-pipeline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

PIPELINE_NAME = "resstore-pipeline"
