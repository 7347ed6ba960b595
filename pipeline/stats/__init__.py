"""Trial statistics: the analysis plan of a trial spec (RESSTORE, ADUSE) on its clinical tables and
imaging biomarkers (``resstore stats``; docs/statistics.md).

Runs only at analysis time, when an allocation key is given; nothing upstream reads the key.

Modules: :mod:`~pipeline.stats.trialspec` (the spec, schema-validated; the config route is
:mod:`~pipeline.stats.spec`), :mod:`~pipeline.stats.sources` and :mod:`~pipeline.stats.data`
(tables, QC and stream-status exclusions, allocation, analysis sets),
:mod:`~pipeline.stats.covariance`, :mod:`~pipeline.stats.reml`, :mod:`~pipeline.stats.mmrm` and
:mod:`~pipeline.stats.kenward_roger` (the MMRM engine), :mod:`~pipeline.stats.design` and
:mod:`~pipeline.stats.continuous` (change from baseline, LS means, MCID),
:mod:`~pipeline.stats.binary`, :mod:`~pipeline.stats.ordinal`, :mod:`~pipeline.stats.counts`,
:mod:`~pipeline.stats.survival` (the other endpoint types), :mod:`~pipeline.stats.analysis` (every
outcome x set, BH families), :mod:`~pipeline.stats.results` (results.tsv columns),
:mod:`~pipeline.stats.report` (HTML), :mod:`~pipeline.stats.safety` (DSMB tables),
:mod:`~pipeline.stats.phantom_resstore`, :mod:`~pipeline.stats.phantom_aduse` and
:mod:`~pipeline.stats.synthetic` (trials with known effects).
"""
