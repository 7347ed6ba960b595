"""Trial statistics: treatment-by-visit MMRM on the primary endpoint and every imaging biomarker.

Runs only at analysis time, when an allocation key is given (config
``stats.allocation``); nothing upstream reads the key.

Modules: :mod:`~pipeline.stats.spec` (config ``stats`` section),
:mod:`~pipeline.stats.data` (input checks, QC exclusions, analysis sets),
:mod:`~pipeline.stats.covariance` and :mod:`~pipeline.stats.mmrm` (the MMRM
engine, numpy/scipy), :mod:`~pipeline.stats.models` (models of one outcome),
:mod:`~pipeline.stats.analysis` (all outcomes x sets), :mod:`~pipeline.stats.report`
(HTML report), :mod:`~pipeline.stats.synthetic` (trials with known effects).
"""
