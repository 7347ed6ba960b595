"""Settings of the storage-invariance check, shared by its test and its benchmark.

``tests/workflow/test_storage_invariance.py`` runs one phantom session stored four
ways (:data:`INVARIANCE_STORAGES`) through the whole pipeline and compares the
features; ``benchmarks/storage_noise.py`` compares the oblique storage with rescans
of the same session. Both use the tiny trial (:data:`TINY_TRIAL`), one ITK thread
per job (:data:`EXACT`), the tolerance ``max(1 % of the RAS value,
noise_floor(column))`` and the list of features that go through a template
registration (:data:`REGISTRATION_DEPENDENT`). The tolerances are explained in the
test's module docstring.
"""

from __future__ import annotations

from pipeline.simulate.storage import StorageSpec

TINY_TRIAL = dict(n_subjects=2, seed=7, anat_voxel_mm=2.5, dwi_voxel_mm=4.0, bold_voxel_mm=4.0,
                  n_bold_volumes=80, n_dwi_directions=12, manual_mask_fraction=1.0)
"""The tiny trial's :class:`~pipeline.simulate.TrialSpec` (``rescan=k`` gives its rescans)."""

# One ITK thread per job: the feature table is then bit-identical run to run.
EXACT = {"resources": {"threads_per_job": 1}}

# The four storages of one session (labels are the subjects' labels).
INVARIANCE_STORAGES = {"ras": StorageSpec("RAS"), "las": StorageSpec("LAS"),
                       "lps": StorageSpec("LPS"),
                       "obl": StorageSpec("oblique", (7.0, -6.0, 7.0))}  # 12.0 degrees

# absolute floors by unit (the oblique storage only): the spread of the same session
# when only ITK's multi-threaded registration noise differs (two runs with 2 threads per
# job, rounded up)
FLOORS = {"mm": 0.05, "mL": 0.5, "z": 0.5, "%": 0.5, "fraction": 0.02, "count": 1.0}


def noise_floor(column: str) -> float:
    """Absolute tolerance floor of feature ``column`` (by its unit; FA, MD and
    laterality have their own)."""
    from pipeline.features import dictionary

    units = dictionary.FEATURES[column]["Units"]
    if column.startswith(("fa_", "dwi_fa")):
        return 0.01
    if column.startswith(("md_", "dwi_md")):
        return 0.02
    if "laterality" in column or column.startswith("bold_li"):
        return 0.1
    for key, value in FLOORS.items():
        if key in units:
            return value
    return 0.02


# Features whose value goes through the template registration (pose-dependent, see the
# test's module docstring): the test holds them to GROSS x their tolerance, not to the
# tolerance itself.
# DWI: every metric computed on the motion-corrected series (outliers, fit residual,
# brain mask and FA/MD summaries) follows the per-volume registration (measured: the
# outlier-volume count 2 against 1 in one CI run, equal in another).
# intracranial volume (template priors), the automatic lesion's hyperintense part and core
# (its tissue model is fitted in the hemisphere the affine template registration defines),
# the DWI CST region volumes (atlas): measured outside 1 %/floor too (2026-12-07).
REGISTRATION_DEPENDENT = ("t1w_bias", "brain_", "intracranial_", "gm_", "wm_", "csf_",
                          "thickness_", "flair_t1w_registration", "lesion_centroid_mni",
                          "lesion_hyperintense", "lesion_core", "cst_", "dwi_cst_", "dwi_motion",
                          "dwi_rotation", "dwi_translation", "dwi_outlier", "dwi_fit",
                          "dwi_brain", "dwi_fa", "dwi_md", "fa_", "md_", "bold_m1",
                          "bold_laterality", "bold_li", "bold_motion", "bold_t1w")
