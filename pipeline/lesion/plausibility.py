"""Plausibility gates of a lesion mask: implausible automatic results go to a reviewer.

An unsupervised segmentation that meets data it was not built for (a T2 given as
FLAIR, a bias field it cannot absorb, an artefact) can return a mask that looks
like a number and is nonsense. Each gate below compares the mask with what a
stroke lesion is; a failed gate sets the lesion stream's status to
``needs_review`` for an *automatic* mask (its features stay out of the models
until a reviewer accepts it in ``qc/ratings.tsv`` or saves a corrected mask),
and is reported for every mask (``lesion_plausibility``).

Gates (limits in the config section ``lesion``):

* ``volume``: the lesion is at most ``max_volume_ml`` (default 150 mL): above the
  145 mL that defines a malignant MCA infarction (Oppenheim et al. 2000, Stroke
  31:2175) a lesion is rare in a subacute trial and an automatic mask that large is
  more often a FLAIR read wrongly (a real FLAIR given as T1w read 382 mL) than an
  infarct, so a reviewer looks;
* ``brain_fraction``: the lesion holds at most ``max_brain_fraction`` of the
  brain (default 0.35; malignant MCA infarcts reach about a third);
* ``csf_like``: at baseline at most ``max_csf_fraction`` of the lesion is
  CSF-like on the T1w, i.e. in the lower quarter between the CSF and GM levels
  (default 0.5; cavitation comes later, at follow-up);
* ``flair_suppresses_csf``: the FLAIR's CSF (the darkest 5 % on the T1w of the
  brain eroded by 5 mm, lesion left out: ventricles and deep sulci) is dark,
  median below 0.7 of white matter: otherwise the image is not a FLAIR (or CSF
  suppression failed) and bright CSF reads as lesion;
* ``flair_brighter_than_mirror``: the lesion is brighter on FLAIR than its
  mirror image in the other hemisphere by more than 0.05 of white matter
  (medians; a lesion is typically 1.3 to 2 times white matter);
* ``lesion_found``: at baseline the mask holds at least ``min_baseline_ml``
  (default 0.1 mL; 0 turns the gate off): every patient of a stroke trial has
  an infarct, so an empty automatic mask at baseline is a missed lesion until a
  reviewer says otherwise (a large lesion crossing the midline made the
  normal-tissue model read it as normal and return 0 mL);
* ``dwi_support``: at baseline with a DWI, at least ``min_dwi_support`` of the
  lesion is DWI-hyperintense (default 0.3);
* ``side_consistent`` (follow-up): not bilateral when the baseline lesion is
  unilateral;
* ``volume_change`` (follow-up): at most ``max_growth`` times the baseline
  volume (default 1.5: a stroke lesion shrinks as it cavitates), and not
  vanished (below 10 % of a baseline of 5 mL or more).

There is no vascular-territory atlas among the installed packages, so "outside
the vascular territories" is not a gate here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Gate limits of one session's mask (config ``lesion.<key>``, ``resstore lesion-segment``).
SESSION_GATE_KEYS = ("min_baseline_ml", "max_volume_ml", "max_brain_fraction",
                     "max_csf_fraction", "min_dwi_support")
#: Gate limits of a follow-up against its baseline (config ``lesion.<key>``).
CHANGE_GATE_KEYS = ("max_growth",)
#: Every configurable gate limit: the config schema holds its default and description.
GATE_KEYS = SESSION_GATE_KEYS + CHANGE_GATE_KEYS
#: Gate limits that are not configuration keys (fixed here).
FIXED_LIMITS = {"max_flair_csf": 0.7, "min_mirror_excess": 0.05}


def schema_defaults() -> dict:
    """Default gate limits: :data:`GATE_KEYS` from the config schema, then :data:`FIXED_LIMITS`."""
    from pipeline.config import schema

    lesion = schema()["properties"]["lesion"]["properties"]
    return {**{key: float(lesion[key]["default"]) for key in GATE_KEYS}, **FIXED_LIMITS}


DEFAULTS = schema_defaults()


@dataclass
class Gate:
    """One plausibility check."""

    name: str
    passed: bool
    value: float | str | None
    limit: float | str | None
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def summary(gates: list[Gate]) -> str:
    """``plausible`` or ``implausible: <messages of the failed gates>``."""
    failed = [g.message for g in gates if not g.passed]
    return "plausible" if not failed else "implausible: " + "; ".join(failed)


def session_gates(lesion: np.ndarray, *, brain: np.ndarray, t1n: np.ndarray,
                  flairn: np.ndarray | None, flair_mirror: np.ndarray | None,
                  csf_t1_level: float, gm_t1_level: float, baseline: bool,
                  dwi_bright: np.ndarray | None = None, limits: dict | None = None,
                  voxel_mm: float = 1.0) -> list[Gate]:
    """Gates that need only this session's images (on one grid).

    Parameters
    ----------
    lesion, brain : ndarray of bool
        Lesion mask and brain mask.
    t1n, flairn : ndarray
        T1w and FLAIR normalised to white matter = 1 (FLAIR may be None).
    flair_mirror : ndarray or None
        ``flairn`` mirrored across the template midline (same grid).
    csf_t1_level, gm_t1_level : float
        Normalised T1w levels of CSF and grey matter (the tissue model's).
    baseline : bool
        Baseline visit (subacute: not yet cavitated).
    dwi_bright : ndarray of bool or None
        DWI-hyperintense voxels on the same grid (baseline sessions with a DWI).
    limits : dict
        Overrides of :data:`DEFAULTS`.
    voxel_mm : float
        Voxel size (mm) of the grid.
    """
    lim = {**DEFAULTS, **(limits or {})}
    gates: list[Gate] = []
    n = int(lesion.sum())
    brain_n = int(brain.sum())
    fraction = n / brain_n if brain_n else 0.0
    volume = n * voxel_mm ** 3 / 1000.0
    if baseline and lim["min_baseline_ml"] > 0:
        gates.append(Gate("lesion_found", volume >= lim["min_baseline_ml"], round(volume, 3),
                          lim["min_baseline_ml"],
                          f"no lesion found at baseline ({volume:.2f} mL): every patient of "
                          "a stroke trial has one"))
    if lim["max_volume_ml"] > 0:
        gates.append(Gate("volume", volume <= lim["max_volume_ml"], round(volume, 2),
                          lim["max_volume_ml"],
                          f"lesion of {volume:.0f} mL (limit {lim['max_volume_ml']:g} mL: larger "
                          "than a malignant MCA infarct)"))
    gates.append(Gate("brain_fraction", fraction <= lim["max_brain_fraction"], round(fraction, 4),
                      lim["max_brain_fraction"],
                      f"lesion is {100 * fraction:.0f} % of the brain (limit "
                      f"{100 * lim['max_brain_fraction']:.0f} %)"))
    # CSF-like: in the lower quarter between the CSF and GM levels (a subacute lesion is
    # T1-hypointense, often below the CSF/GM midpoint, but not as dark as CSF)
    csf_cut = csf_t1_level + 0.25 * (gm_t1_level - csf_t1_level)
    if n and baseline:
        csf_like = float(np.mean(t1n[lesion] < csf_cut))
        gates.append(Gate("csf_like", csf_like <= lim["max_csf_fraction"], round(csf_like, 3),
                          lim["max_csf_fraction"],
                          f"{100 * csf_like:.0f} % of the lesion is CSF-like on the T1w at "
                          "baseline (before any cavitation)"))
    if flairn is not None:
        # CSF for the suppression check: the darkest 5 % on the T1w of the brain eroded by
        # about 5 mm (ventricles and deep sulci; the brain's edge is partial volume with
        # skull and background, dark on both images), the lesion left out
        from scipy import ndimage

        inner = ndimage.binary_erosion(brain, iterations=max(1, int(round(5.0 / voxel_mm))))
        inner &= ~lesion
        csf = inner & (t1n <= np.percentile(t1n[inner], 5)) if inner.sum() > 1000 else inner[:0]
        if csf.sum() > 50:
            level = float(np.median(flairn[csf]))
            gates.append(Gate("flair_suppresses_csf", level <= lim["max_flair_csf"], round(level, 3),
                              lim["max_flair_csf"],
                              f"CSF is bright on the FLAIR ({level:.2f} of white matter): not a "
                              "CSF-suppressed FLAIR"))
        if n and flair_mirror is not None:
            inside = lesion & (flair_mirror > 0)
            if inside.sum() > 10:
                diff = float(np.median(flairn[inside]) - np.median(flair_mirror[inside]))
                gates.append(Gate("flair_brighter_than_mirror", diff > lim["min_mirror_excess"],
                                  round(diff, 3), lim["min_mirror_excess"],
                                  "the lesion is not brighter on FLAIR than its mirror image"))
    if dwi_bright is not None and baseline and n:
        support = float(np.mean(dwi_bright[lesion]))
        gates.append(Gate("dwi_support", support >= lim["min_dwi_support"], round(support, 3),
                          lim["min_dwi_support"],
                          f"only {100 * support:.0f} % of the lesion is DWI-hyperintense at "
                          "baseline"))
    return gates


def change_gates(*, volume_ml: float | None, baseline_ml: float | None, side: str | None,
                 baseline_side: str | None, limits: dict | None = None) -> list[Gate]:
    """Gates of a follow-up session against its baseline."""
    lim = {**DEFAULTS, **(limits or {})}
    gates: list[Gate] = []
    if side and baseline_side:
        ok = not (side == "bilateral" and baseline_side in ("left", "right"))
        gates.append(Gate("side_consistent", ok, side, baseline_side,
                          f"bilateral at follow-up, {baseline_side} at baseline"))
    if volume_ml is not None and baseline_ml:
        ratio = volume_ml / baseline_ml
        grown = ratio <= lim["max_growth"]
        gates.append(Gate("volume_change", grown and not (baseline_ml >= 5.0 and ratio < 0.1),
                          round(ratio, 3), lim["max_growth"],
                          f"follow-up lesion is {ratio:.2f} x the baseline volume"
                          + (" (growth: a stroke lesion shrinks as it cavitates)" if not grown
                             else " (vanished)")))
    return gates
