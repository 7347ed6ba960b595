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

from pipeline import status
from pipeline.antsio import read_ants_affine
from pipeline.errors import PipelineInputError
from pipeline.io import read_json, save_image, write_json
from pipeline.lesion import measures, plausibility
from pipeline.lesion.figures import lesion_mosaic
from pipeline.lesion.reviewed import NOT_REVIEWED, read_reviewed_mask
from pipeline.lesion.space import apply_affine
from pipeline.orientation import check_same_grid, read_image, read_image_storage
from pipeline.side import ROLES, LesionSide, read_lesion_side

log = logging.getLogger(__name__)

METHOD = ("unsupervised: normal-tissue (T1w, FLAIR) Gaussian mixture with outlier class "
          "(Van Leemput 2001), FLAIR hyperintensity hysteresis, cavity by template-mirror "
          "asymmetry, connected-component clean-up")


def segment_session(*, t1w, t1w_raw, brain_mask, xfm, flair=None, manual=None, out_mask, out_metrics,
                    out_figure, out_flair=None, reviewed=None, manual_overrides=True,
                    manual_threshold=0.5, manual_labels=None,
                    options=None, bilateral_fraction=0.2, registration_voxel_mm=2.0,
                    n4_shrink_factor=4, dwi=None, baseline=False, gate_limits=None,
                    adc_threshold=620e-6, max_voxel_mm=None) -> dict:
    """Lesion mask (space-T1w) and volume metrics of one session.

    Source of the mask: the reviewed mask of the QC review page (with its sidecar,
    :mod:`pipeline.lesion.reviewed`) when given; else the manual mask when given and
    ``manual_overrides``; else the automatic segmentation when a FLAIR is given; else
    the manual mask; else an empty mask (no FLAIR, no manual mask: nothing can be said
    about a lesion, so the volume metrics are NA while the empty mask lets the
    other streams run unmasked). Every image enters through the orientation
    contract (:mod:`pipeline.orientation`): raw inputs in any storage, all
    arrays on the canonical T1w grid.

    At the baseline visit with a DWI (``dwi``: (dwi, bval, bvec) paths), the
    acute core (DWI-bright and ADC below ``adc_threshold``,
    :mod:`pipeline.lesion.acute`) joins the automatic mask and is the evidence
    the ``dwi_support`` gate checks. Plausibility gates
    (:mod:`pipeline.lesion.plausibility`) are reported for every mask; a failed
    gate on an automatic mask sets ``lesion_status`` to ``needs_review``.
    """
    from pipeline.lesion.automatic import automatic_lesion
    from pipeline.lesion.manual import read_manual_mask
    from pipeline.orientation import working_grid

    t1_img = read_image(t1w, what="T1w")
    mask_img = read_image(brain_mask, what="brain mask")
    check_same_grid(t1_img, brain_mask=mask_img)
    to_mni = read_ants_affine(xfm)
    manual_mask = None
    manual_rule = None
    # the raw T1w, read once: the grid manual masks are drawn on, and (on the working
    # grid) the input of the lesion-masked N4 of the automatic segmentation
    raw_t1w = read_image(t1w_raw, what="T1w") if (manual or flair) else None
    if manual:
        read = read_manual_mask(manual, t1_img, threshold=manual_threshold, labels=manual_labels,
                                drawn_on=raw_t1w)
        manual_mask, manual_rule = read.mask, read.rule
    automatic, flair_t1w, seg_metrics, model, model_obj = None, None, {}, {}, None
    if flair:
        flair_img, flair_storage = read_image_storage(flair, what="FLAIR")
        raw_img = working_grid(raw_t1w, max_voxel_mm)  # the T1w preproc's (working) grid
        seg, reg = automatic_lesion(raw_img, t1_img, flair_img, mask_img, to_mni,
                                    registration_voxel_mm=registration_voxel_mm,
                                    n4_shrink_factor=n4_shrink_factor, **(options or {}))
        flair_t1w = reg.flair_t1w
        automatic = seg.mask
        seg_metrics = {**reg.metrics, **{k: v for k, v in seg.metrics.items()
                                         if k in ("lesion_hyperintense_volume_ml",
                                                  "lesion_core_volume_ml", "lesion_n_components")}}
        model = {k: v for k, v in seg.metrics.items() if k.startswith("lesion_model")}
        model["flair_storage"] = flair_storage.sidecar()
        model_obj = seg.model
    acute = None
    if dwi and baseline:
        from pipeline.dwi.gradients import load_dwi
        from pipeline.lesion.acute import acute_evidence

        acute = acute_evidence(load_dwi(*dwi), t1_img, mask_img, adc_threshold=adc_threshold)
        seg_metrics.update(acute.metrics)
        if automatic is not None:  # subacute: the FLAIR lesion and the diffusion core
            automatic = automatic | acute.core
    # reviewed > manual > automatic; the review's starting mask is checked against both
    review = (read_reviewed_mask(reviewed, t1_img, versions={"manual": manual_mask,
                                                             "automatic": automatic})
              if reviewed else None)
    if review is not None:
        lesion, source = review.mask, "reviewed"
    elif manual_mask is not None and (manual_overrides or automatic is None):
        lesion, source = manual_mask, "manual"
    elif automatic is not None:
        lesion, source = automatic, "automatic"
    else:
        lesion, source = np.zeros(t1_img.shape, bool), "none"
    metrics = measures.volume_features(lesion, t1_img, to_mni,
                                       bilateral_fraction=bilateral_fraction)
    if source == "none":
        metrics = {k: (None if k != "lesion_side_session" else "unknown") for k in metrics}
        metrics["lesion_status"] = "no FLAIR and no manual lesion mask in this session"
    metrics.update(seg_metrics)
    metrics["lesion_source"] = source
    metrics.update(review.metrics() if review else NOT_REVIEWED)
    gates = _gates(lesion, t1_img, mask_img, to_mni, flair_t1w=flair_t1w,
                   model=model_obj, baseline=baseline, acute=acute, limits=gate_limits)
    metrics["lesion_plausibility"] = plausibility.summary(gates)
    if acute is not None and lesion.any():
        metrics["lesion_dwi_support_fraction"] = float(acute.bright[lesion].mean())
        metrics["lesion_adc_median_um2_ms"] = float(np.median(acute.adc[lesion]) * 1e3)
    if source == "automatic" and any(not g.passed for g in gates):
        metrics["lesion_status"] = "needs_review: " + metrics["lesion_plausibility"].split(": ", 1)[1]
    metrics["lesion_manual_automatic_dice"] = (
        measures.dice(manual_mask, automatic)
        if manual_mask is not None and automatic is not None else None)
    params = {"source": source, "manual_overrides": manual_overrides, "method": METHOD,
              "manual_mask_rule": manual_rule, **(options or {}), **model,
              "plausibility_gates": [g.to_dict() for g in gates],
              "diffusion_evidence": acute is not None,
              "review": review.provenance() if review else None}
    save_image(nib.Nifti1Image(lesion.astype(np.uint8), t1_img.affine), out_mask,
               sources=[s for s in (t1w_raw, t1w, flair, manual, reviewed, brain_mask, xfm) if s],
               parameters=params,
               description=f"binary lesion mask on the T1w grid ({source})", dtype="uint8")
    write_json(out_metrics, metrics)
    if out_flair:
        _save_flair_t1w(flair_t1w, out_flair, sources=[flair, t1w])

    rows = {"FLAIR": flair_t1w} if flair_t1w is not None else {}
    rows["T1w"] = t1_img
    contours = {"lesion": nib.Nifti1Image(lesion.astype(np.uint8), t1_img.affine)}
    if manual_mask is not None and source != "manual":
        contours["manual"] = nib.Nifti1Image(manual_mask.astype(np.uint8), t1_img.affine)
    if automatic is not None and source == "manual":
        contours = {"manual": contours["lesion"],
                    "lesion": nib.Nifti1Image(automatic.astype(np.uint8), t1_img.affine)}
    if acute is not None:
        contours["ADC core"] = nib.Nifti1Image(acute.core.astype(np.uint8), t1_img.affine)
    if automatic is not None and source == "reviewed" and manual_mask is None:
        contours["automatic"] = nib.Nifti1Image(automatic.astype(np.uint8), t1_img.affine)
    vol = metrics["lesion_volume_ml"]
    rule = f"; manual mask: {manual_rule}" if manual_rule and source == "manual" else ""
    lesion_mosaic(rows, contours, out_figure, focus="lesion",
                  title=f"{Path(t1w).name.split('_desc')[0]}: lesion ({source}"
                        + (f" by {review.rater}" if review else "")
                        + (f", {vol:.1f} mL" if vol is not None else "") + f"){rule}")
    return metrics


def _gates(lesion, t1_img, mask_img, to_mni, *, flair_t1w, model, baseline, acute,
           limits) -> list:
    """Plausibility gates of one session's mask (:mod:`pipeline.lesion.plausibility`)."""
    from pipeline.lesion.space import mirror
    from pipeline.lesion.tissue_model import white_matter_level

    brain = np.asarray(mask_img.dataobj) > 0.5
    t1 = t1_img.get_fdata(dtype=np.float32)
    if model is not None:
        t1n = t1 / model.wm_t1w_raw
        levels = model.t1w
    else:  # no FLAIR: T1w levels from the brain's histogram alone
        t1n = t1 / white_matter_level(t1[brain])
        levels = {"csf": 0.3, "gm": 0.7}
    flairn = mirrored = None
    if flair_t1w is not None and model is not None:
        flairn = flair_t1w.get_fdata(dtype=np.float32) / model.wm_flair_raw
        mirrored = mirror(flairn, t1_img.affine, to_mni)
    return plausibility.session_gates(
        lesion, brain=brain, t1n=t1n, flairn=flairn, flair_mirror=mirrored,
        csf_t1_level=levels["csf"], gm_t1_level=levels["gm"], baseline=baseline,
        dwi_bright=None if acute is None else acute.bright, limits=limits,
        voxel_mm=float(np.cbrt(abs(np.linalg.det(t1_img.affine[:3, :3])))))


def _save_flair_t1w(flair_t1w, out, *, sources) -> None:
    """The registered FLAIR (QC review page), or a status record when there is no FLAIR."""
    if flair_t1w is None:
        status.write_records([out], {"status": "not made", "error": "no FLAIR in this session"})
        return
    save_image(nib.Nifti1Image(np.asarray(flair_t1w.dataobj, np.float32), flair_t1w.affine), out,
               sources=[s for s in sources if s], parameters={"method": "N4, rigid to the T1w "
                                                              "(Mattes MI), linear interpolation"},
               description="FLAIR registered to the T1w, on the T1w grid")


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
    ``ipsilesional_hemisphere`` (:class:`pipeline.side.LesionSide`'s rule) and the
    reference session's hemisphere volumes. Every stream reads the file with
    :func:`pipeline.side.read_lesion_side`.
    """
    record = status.read_record(metrics) if metrics else None
    if record is not None:  # the reference session's lesion step failed: no side from it
        log.warning("sub-%s: reference lesion unavailable (%s)", subject, status.describe(record))
    data = read_json(metrics) if metrics and record is None else {}
    left, right = data.get("lesion_volume_left_ml"), data.get("lesion_volume_right_ml")
    from_mask = data.get("lesion_side_session", "unknown") if data else "unknown"
    given = read_participant_side(participants, subject)
    if given is not None:
        side, source = given, "participants.tsv"
    elif from_mask not in (None, "unknown"):
        side, source = from_mask, f"lesion mask ses-{session}"
    else:
        side, source = "unknown", "unavailable"
    resolved = LesionSide.from_side(side, left_ml=left, right_ml=right, source=source)
    result = {"lesion_side": resolved.side, "source": resolved.source,
              "ipsilesional_hemisphere": resolved.ipsilesional,
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


def lesion_load(*, lesion_mask, t1w, side_json, atlas, xfm_syn, metrics, out_metrics,
                out_figure, baseline_metrics=None, is_baseline=False, gate_limits=None) -> dict:
    """CST lesion load (ipsilesional), MNI centroid and volume change of one session.

    The CST comes from the anatomy stream's atlas regions (Juelich CST brought
    through the lesion-masked SyN) and the centroid through the same SyN; there
    is no other path (a missing input is a named error, not a method switch).
    """
    from pipeline.templates import ATLAS_REGION_LABELS

    for path, what in ((atlas, "atlas regions (lesion-masked SyN)"),
                       (xfm_syn, "SyN transform MNI -> T1w")):
        if not path:
            raise PipelineInputError(None, f"CST lesion load needs the {what}; none given")
    t1_img = read_image(t1w, what="T1w")
    lesion_img = read_image(lesion_mask, what="lesion mask")
    atlas_img = read_image(atlas, what="atlas dseg")
    check_same_grid(t1_img, lesion=lesion_img, atlas=atlas_img)
    lesion = np.asarray(lesion_img.dataobj) > 0.5
    labels = np.rint(np.asarray(atlas_img.dataobj)).astype(np.int32)
    side = read_lesion_side(side_json)
    session_metrics = read_json(metrics)
    index = {name: key for key, name in ATLAS_REGION_LABELS.items()}
    cst = {s: labels == index[f"cst_{s}"] for s in ("left", "right")}
    point_map = _syn_point_map(xfm_syn)
    # axial slabs of the weighted load: 1 mm template slices, CST voxels through the SyN
    tract = cst["left"] | cst["right"]
    slab = np.zeros(lesion.shape, int)
    if tract.any():
        world = apply_affine(t1_img.affine, np.argwhere(tract).astype(float))
        slab[tract] = np.floor(point_map(world)[:, 2]).astype(int)
    known = session_metrics.get("lesion_source") != "none"
    out: dict = {"lesion_side_subject": side.side}
    for role in ROLES:
        hemi = side.hemisphere(role)
        load = (measures.cst_lesion_load(lesion, cst[hemi], t1_img, slab)
                if hemi and known else {"overlap_ml": None, "fraction": None, "weighted_ml": None})
        out[f"cst_lesion_overlap_{role}_ml"] = load["overlap_ml"]
        out[f"cst_lesion_load_{role}_fraction"] = load["fraction"]
        out[f"cst_lesion_load_weighted_{role}_ml"] = load["weighted_ml"]
    c = measures.centroid(lesion, t1_img, point_map) if known else np.full(3, np.nan)
    out.update(lesion_centroid_mni_x=float(c[0]), lesion_centroid_mni_y=float(c[1]),
               lesion_centroid_mni_z=float(c[2]))
    volume = session_metrics.get("lesion_volume_ml")
    baseline_data = (read_json(baseline_metrics) if baseline_metrics
                     and status.read_record(baseline_metrics) is None else {})
    base = baseline_data.get("lesion_volume_ml")
    if is_baseline:
        base = volume
    elif baseline_data:
        gates = plausibility.change_gates(
            volume_ml=volume, baseline_ml=base, side=session_metrics.get("lesion_side_session"),
            baseline_side=baseline_data.get("lesion_side_session"), limits=gate_limits)
        out["lesion_plausibility_change"] = plausibility.summary(gates)
        if session_metrics.get("lesion_source") == "automatic" and any(not g.passed for g in gates):
            out["lesion_status"] = ("needs_review: "
                                    + out["lesion_plausibility_change"].split(": ", 1)[1])
    change = (volume - base) if (volume is not None and base is not None) else None
    out["lesion_volume_change_ml"] = change
    out["lesion_volume_change_percent"] = (100.0 * change / base
                                           if change is not None and base else None)
    write_json(out_metrics, out)

    contours = {"lesion": nib.Nifti1Image(lesion.astype(np.uint8), t1_img.affine)}
    for role in ROLES:
        hemi = side.hemisphere(role)
        if hemi:
            contours[f"cst {role}"] = nib.Nifti1Image(cst[hemi].astype(np.uint8), t1_img.affine)
    focus = "cst ipsilesional" if side.lateralised else "lesion"
    lesion_mosaic({"T1w": t1_img}, contours, out_figure, focus=focus,
                  title=f"{Path(t1w).name.split('_desc')[0]}: CST lesion load (SyN atlas)")
    log.info("CST (lesion-masked SyN): %s", {k: v for k, v in out.items() if k.startswith("cst")})
    return out
