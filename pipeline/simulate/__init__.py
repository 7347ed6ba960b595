"""Seeded phantom-trial generator: the demo data and the truth every analysis is tested against.

:func:`simulate_trial` writes a valid BIDS dataset (``<out>/bids``), the
allocation key outside it (``<out>/allocation.tsv``) and the ground truth
(``<out>/truth``). See :mod:`pipeline.simulate.trial`.
"""

from pipeline.simulate.trial import TrialSpec, simulate_trial

__all__ = ["TrialSpec", "simulate_trial"]
