"""Session- and subject-level steps of the lesion stream: load, compute, save.

Each function reads its inputs, calls the pure functions of
:mod:`pipeline.lesion.segment` / :mod:`pipeline.lesion.measures`, and writes
BIDS-derivative outputs with sidecars. The CLI (``resstore lesion-*``) calls them.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline import validate
from pipeline.antsio import read_ants_affine
from pipeline.errors import PipelineInputError
from pipeline.io import read_json, save_image, write_json
from pipeline.lesion import measures
from pipeline.lesion.figures import lesion_mosaic
from pipeline.lesion.space import apply_affine

log = logging.getLogger(__name__)

METHOD = ("unsupervised: normal-tissue (T1w, FLAIR) Gaussian mixture with outlier class "
          "(Van Leemput 2001), FLAIR hyperintensity hysteresis, cavity by template-mirror "
          "asymmetry, connected-component clean-up")


def segment_session(*, t1w, t1w_raw, brain_mask, xfm, flair=None, manual=None, out_mask, out_metrics,
                    out_figure, manual_overrides=True, options=None, bilateral_fraction=0.2,
                    registration_voxel_mm=2.0, n4_shrink_factor=4) -> dict:
    """Lesion mask (space-T1w) and volume metrics of one session.

    Source of the mask: the manual mask when given and ``manual_overrides``;
    else the automatic segmentation when a FLAIR is given; else the manual
    mask; else an empty mask (no FLAIR, no manual mask: nothing can be said
    about a lesion, so the volume metrics are NA while the empty mask lets the
    other streams run unmasked).
    """
    from pipeline.lesion.automatic import automatic_lesion

    t1_img = validate.load_data(t1w, ndim=(3,), what="T1w")
    mask_img = validate.load_data(brain_mask, ndim=(3,), what="brain mask")
    to_mni = read_ants_affine(xfm)
    manual_mask = None
    if manual:
        manual_mask = measures.check_manual_mask(
            validate.load_data(manual, ndim=(3, 4), what="manual lesion mask"), t1_img, path=manual)
    automatic, flair_t1w, seg_metrics = None, None, {}
    if flair:
        flair_img = validate.load_data(flair, ndim=(3,), what="FLAIR")
        raw_img = validate.load_data(t1w_raw, ndim=(3,), what="T1w")
        seg, reg = automatic_lesion(raw_img, t1_img, flair_img, mask_img, to_mni,
                                    registration_voxel_mm=registration_voxel_mm,
                                    n4_shrink_factor=n4_shrink_factor, **(options or {}))
        flair_t1w = reg.flair_t1w
        automatic = seg.mask
        seg_metrics = {**reg.metrics, **{k: v for k, v in seg.metrics.items()
                                         if k in ("lesion_hyperintense_volume_ml",
                                                  "lesion_core_volume_ml", "lesion_n_components")}}
        model = {k: v for k, v in seg.metrics.items() if k.startswith("lesion_model")}
    else:
        model = {}
    if manual_mask is not None and (manual_overrides or automatic is None):
        lesion, source = manual_mask, "manual"
    elif automatic is not None:
        lesion, source = automatic, "automatic"
    else:
        lesion, source = np.zeros(t1_img.shape, bool), "none"
    metrics = measures.volume_features(lesion, t1_img, to_mni,
                                       bilateral_fraction=bilateral_fraction)
    if source == "none":
        metrics = {k: (None if k != "lesion_side_session" else "unknown") for k in metrics}
    metrics.update(seg_metrics)
    metrics["lesion_source"] = source
    metrics["lesion_manual_automatic_dice"] = (
        measures.dice(manual_mask, automatic)
        if manual_mask is not None and automatic is not None else None)
    params = {"source": source, "manual_overrides": manual_overrides, "method": METHOD,
              **(options or {}), **model}
    save_image(nib.Nifti1Image(lesion.astype(np.uint8), t1_img.affine), out_mask,
               sources=[s for s in (t1w_raw, t1w, flair, manual, brain_mask, xfm) if s],
               parameters=params,
               description=f"binary lesion mask on the T1w grid ({source})", dtype="uint8")
    write_json(out_metrics, metrics)

    rows = {"FLAIR": flair_t1w} if flair_t1w is not None else {}
    rows["T1w"] = t1_img
    contours = {"lesion": nib.Nifti1Image(lesion.astype(np.uint8), t1_img.affine)}
    if manual_mask is not None and source != "manual":
        contours["manual"] = nib.Nifti1Image(manual_mask.astype(np.uint8), t1_img.affine)
    if automatic is not None and source == "manual":
        contours = {"manual": contours["lesion"],
                    "lesion": nib.Nifti1Image(automatic.astype(np.uint8), t1_img.affine)}
    vol = metrics["lesion_volume_ml"]
    lesion_mosaic(rows, contours, out_figure, focus="lesion",
                  title=f"{Path(t1w).name.split('_desc')[0]}: lesion ({source}"
                        + (f", {vol:.1f} mL)" if vol is not None else ")"))
    return metrics


def read_participant_side(participants, subject: str) -> str | None:
    """``lesion_side`` of ``sub-<subject>`` in participants.tsv (None if absent or n/a)."""
    if not participants or not Path(participants).exists():
        return None
    with open(participants, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row.get("participant_id") == f"sub-{subject}":
                value = (row.get("lesion_side") or "").strip().lower()
                if value in ("", "n/a", "na", "nan"):
                    return None
                if value not in ("left", "right", "bilateral", "none"):
                    raise PipelineInputError(
                        participants, f"sub-{subject}: lesion_side {value!r} is not one of "
                                      "left, right, bilateral, none")
                return value
    return None


def subject_side(*, subject, metrics=None, participants=None, out, session="") -> dict:
    """Per-subject lesion side JSON: participants.tsv overrides the baseline lesion.

    Written keys: ``lesion_side`` (left/right/bilateral/none/unknown), ``source``
    (``participants.tsv``, ``lesion mask ses-<label>`` or ``unavailable``),
    ``ipsilesional_hemisphere`` (left/right: the side, or for a bilateral lesion
    the hemisphere holding more of it; null when none/unknown) and the
    reference session's hemisphere volumes.
    """
    data = read_json(metrics) if metrics else {}
    left, right = data.get("lesion_volume_left_ml"), data.get("lesion_volume_right_ml")
    from_mask = data.get("lesion_side_session", "unknown") if data else "unknown"
    given = read_participant_side(participants, subject)
    if given is not None:
        side, source = given, "participants.tsv"
    elif from_mask != "unknown":
        side, source = from_mask, f"lesion mask ses-{session}"
    else:
        side, source = "unknown", "unavailable"
    ipsi = side if side in ("left", "right") else None
    if side == "bilateral" and left is not None and right is not None:
        ipsi = "left" if left >= right else "right"
    result = {"lesion_side": side, "source": source, "ipsilesional_hemisphere": ipsi,
              "lesion_side_from_mask": from_mask, "reference_session": session or None,
              "lesion_volume_left_ml": left, "lesion_volume_right_ml": right}
    if given is not None and from_mask in ("left", "right") and given != from_mask:
        log.warning("sub-%s: participants.tsv lesion_side %s, baseline lesion mask says %s",
                    subject, given, from_mask)
    write_json(out, result)
    return result


def _syn_point_map(xfm_syn):
    """Callable mapping T1w world points (RAS, N x 3) to MNI through an ANTs transform."""
    import ants
    import pandas as pd

    def apply(xyz):
        pts = pd.DataFrame({"x": -xyz[:, 0], "y": -xyz[:, 1], "z": xyz[:, 2]})
        out = ants.apply_transforms_to_points(3, pts, [str(xfm_syn)])
        return np.stack([-out["x"].to_numpy(), -out["y"].to_numpy(), out["z"].to_numpy()], 1)

    return apply


def _cst_masks_affine(t1_img, to_mni) -> dict:
    """Juelich CST (probability > 25 %) in T1w space through the affine."""
    from scipy import ndimage

    from pipeline import templates

    out = {}
    vox_from_t1 = None
    for side in ("left", "right"):
        prob = templates.atlas_probability("juelich", templates.JUELICH_CST[side])
        if vox_from_t1 is None:
            vox_from_t1 = np.linalg.inv(prob.affine) @ to_mni @ t1_img.affine
        data = ndimage.affine_transform(prob.get_fdata(dtype=np.float32), vox_from_t1[:3, :3],
                                        offset=vox_from_t1[:3, 3], output_shape=t1_img.shape,
                                        order=1, mode="constant", cval=0.0)
        out[side] = data > 0.25
    return out


def lesion_load(*, lesion_mask, t1w, side_json, xfm, metrics, out_metrics, out_figure,
                atlas=None, xfm_syn=None, baseline_metrics=None, is_baseline=False) -> dict:
    """CST lesion load (ipsilesional), MNI centroid and volume change of one session."""
    from pipeline.templates import ATLAS_REGION_LABELS

    t1_img = validate.load_data(t1w, ndim=(3,), what="T1w")
    lesion = np.asarray(validate.load_data(lesion_mask, what="lesion mask").dataobj) > 0
    to_mni = read_ants_affine(xfm)
    side = read_json(side_json)
    session_metrics = read_json(metrics)
    if atlas:
        labels = np.asarray(validate.load_data(atlas, what="atlas dseg").dataobj)
        if labels.shape != lesion.shape:
            raise PipelineInputError(atlas, f"atlas grid {labels.shape} differs from the lesion "
                                            f"mask grid {lesion.shape}")
        index = {name: key for key, name in ATLAS_REGION_LABELS.items()}
        cst = {s: labels == index[f"cst_{s}"] for s in ("left", "right")}
        cst_source = "atlas dseg (lesion-masked SyN)"
    else:
        cst = _cst_masks_affine(t1_img, to_mni)
        cst_source = "Juelich CST > 25 % through the affine template registration"
    world = apply_affine(to_mni @ t1_img.affine,
                         np.argwhere(np.ones(lesion.shape, bool)).astype(float))
    slab = np.floor(world[:, 2]).astype(int).reshape(lesion.shape)
    known = session_metrics.get("lesion_source") != "none"
    ipsi = side.get("ipsilesional_hemisphere")
    out: dict = {"lesion_side_subject": side.get("lesion_side", "unknown")}
    for role, hemi in (("ipsilesional", ipsi),
                       ("contralesional", {"left": "right", "right": "left"}.get(ipsi))):
        load = (measures.cst_lesion_load(lesion, cst[hemi], t1_img, slab)
                if hemi and known else {"overlap_ml": None, "fraction": None, "weighted_ml": None})
        out[f"cst_lesion_overlap_{role}_ml"] = load["overlap_ml"]
        out[f"cst_lesion_load_{role}_fraction"] = load["fraction"]
        out[f"cst_lesion_load_weighted_{role}_ml"] = load["weighted_ml"]
    point_map = _syn_point_map(xfm_syn) if xfm_syn else to_mni
    c = measures.centroid(lesion, t1_img, point_map) if known else np.full(3, np.nan)
    out.update(lesion_centroid_mni_x=float(c[0]), lesion_centroid_mni_y=float(c[1]),
               lesion_centroid_mni_z=float(c[2]))
    volume = session_metrics.get("lesion_volume_ml")
    base = read_json(baseline_metrics).get("lesion_volume_ml") if baseline_metrics else None
    if is_baseline:
        base = volume
    change = (volume - base) if (volume is not None and base is not None) else None
    out["lesion_volume_change_ml"] = change
    out["lesion_volume_change_percent"] = (100.0 * change / base
                                           if change is not None and base else None)
    write_json(out_metrics, out)

    contours = {"lesion": nib.Nifti1Image(lesion.astype(np.uint8), t1_img.affine)}
    for role, hemi in (("cst ipsilesional", ipsi),
                       ("cst contralesional", {"left": "right", "right": "left"}.get(ipsi))):
        if hemi:
            contours[role] = nib.Nifti1Image(cst[hemi].astype(np.uint8), t1_img.affine)
    focus = "cst ipsilesional" if ipsi else "lesion"
    lesion_mosaic({"T1w": t1_img}, contours, out_figure, focus=focus,
                  title=f"{Path(t1w).name.split('_desc')[0]}: CST lesion load "
                        f"({cst_source.split(' (')[0].split(' through')[0]})")
    log.info("CST (%s): %s", cst_source, {k: v for k, v in out.items() if k.startswith("cst")})
    return out
