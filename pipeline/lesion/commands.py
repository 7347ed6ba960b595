"""``resstore lesion-*`` commands (one per rule of workflow/rules/lesion.smk)."""

from __future__ import annotations

import logging

from pipeline.lesion.plausibility import CHANGE_GATE_KEYS, GATE_KEYS

log = logging.getLogger(__name__)


def _bool(text: str) -> bool:
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _cmd_segment(args) -> None:
    from pipeline.antsio import set_threads

    set_threads(args.threads)
    from pipeline.lesion.run import segment_session

    segment_session(
        t1w=args.t1w, t1w_raw=args.t1w_raw, brain_mask=args.brain_mask, xfm=args.xfm, flair=args.flair,
        manual=args.manual, out_mask=args.out_mask, out_metrics=args.out_metrics,
        out_figure=args.out_figure, out_flair=args.out_flair, reviewed=args.reviewed,
        manual_overrides=args.manual_overrides,
        manual_threshold=args.manual_threshold, manual_labels=args.manual_labels,
        options=dict(seed_z=args.seed_z, grow_z=args.grow_z,
                     seed_smoothing_mm=args.seed_smoothing_mm,
                     asymmetry_z=args.asymmetry_z, min_component_ml=args.min_component_ml,
                     core_enclosure=args.core_enclosure,
                     brain_dilation_mm=args.brain_dilation_mm),
        bilateral_fraction=args.bilateral_fraction,
        registration_voxel_mm=args.registration_voxel_mm,
        n4_shrink_factor=args.n4_shrink_factor,
        dwi=(args.dwi, args.bval, args.bvec) if args.dwi else None, baseline=args.is_baseline,
        adc_threshold=args.adc_threshold, max_voxel_mm=args.max_voxel_mm,
        gate_limits={k: getattr(args, k) for k in GATE_KEYS})


def _cmd_side(args) -> None:
    from pipeline.lesion.run import subject_side

    subject_side(subject=args.subject, metrics=args.metrics, participants=args.participants,
                 out=args.out, session=args.session)


def _cmd_load(args) -> None:
    from pipeline.antsio import set_threads

    set_threads(args.threads)
    from pipeline.lesion.run import lesion_load

    lesion_load(lesion_mask=args.lesion_mask, t1w=args.t1w, side_json=args.side,
                atlas=args.atlas, xfm_syn=args.xfm_syn,
                metrics=args.metrics, baseline_metrics=args.baseline_metrics,
                is_baseline=args.is_baseline, out_metrics=args.out_metrics,
                out_figure=args.out_figure, gate_limits={k: getattr(args, k) for k in CHANGE_GATE_KEYS})


def register(command) -> None:
    from pipeline.config import add_schema_option, add_threads_option, schema_default

    def default(key):
        return schema_default("lesion", key)

    p = command("lesion-segment", _cmd_segment,
                "FLAIR to T1w, automatic (or manual) lesion mask, volume and side")
    add_schema_option(p, "anat", "max_voxel_mm")
    for opt, help_ in (("--t1w", "N4-corrected T1w (anatomy stream, canonical grid)"),
                       ("--t1w-raw", "the session's raw T1w (any storage orientation)"),
                       ("--brain-mask", "affine template brain mask on the T1w grid"),
                       ("--xfm", "ANTs affine MNI152NLin6Asym -> T1w (anatomy stream)"),
                       ("--out-mask", "lesion mask on the T1w grid (uint8)"),
                       ("--out-metrics", "metrics JSON"), ("--out-figure", "QC figure (PNG)")):
        p.add_argument(opt, required=True, help=help_)
    p.add_argument("--out-flair", help="N4 FLAIR registered to the T1w, on the T1w grid (review "
                   "page); without --flair a status record saying there is no FLAIR")
    p.add_argument("--flair", help="raw FLAIR (omit: no automatic segmentation)")
    p.add_argument("--manual", help="manual *_label-lesion_roi mask drawn on the T1w's grid "
                   "(any storage orientation)")
    p.add_argument("--reviewed", help="reviewed mask saved from the QC review page "
                   "(*_space-T1w_desc-reviewed_mask.nii.gz, its JSON sidecar beside it); used "
                   "instead of the manual and the automatic mask")
    p.add_argument("--manual-overrides", type=_bool, default=default("manual_overrides_automatic"),
                   help="use the manual mask instead of the automatic one (true/false)")
    p.add_argument("--manual-threshold", type=float, default=default("manual_threshold"),
                   help="probability maps: lesion where the value is >= this")
    p.add_argument("--manual-labels", type=int, nargs="*", default=default("manual_labels"),
                   help="lesion label value(s) of a multi-label manual mask")
    p.add_argument("--dwi", help="the session's raw DWI (baseline: acute DWI/ADC evidence); "
                   "its .bval/.bvec are --bval/--bvec")
    p.add_argument("--bval", help="b-values of --dwi")
    p.add_argument("--bvec", help="b-vectors of --dwi")
    p.add_argument("--is-baseline", action="store_true",
                   help="this is the baseline visit (subacute: DWI evidence, no cavitation yet)")
    for key, kind in (("adc_threshold", float), *((k, float) for k in GATE_KEYS),
                      ("seed_z", float), ("seed_smoothing_mm", float), ("grow_z", float),
                      ("asymmetry_z", float), ("min_component_ml", float),
                      ("core_enclosure", float), ("brain_dilation_mm", float),
                      ("bilateral_fraction", float), ("registration_voxel_mm", float),
                      ("n4_shrink_factor", int)):
        p.add_argument("--" + key.replace("_", "-"), type=kind, default=default(key),
                       help=f"lesion.{key} (see the configuration reference)")
    add_threads_option(p, help="ITK threads")

    p = command("lesion-side", _cmd_side, "lesion side of one subject (baseline lesion)")
    p.add_argument("--subject", required=True, help="label without sub-")
    p.add_argument("--metrics", help="lesion metrics JSON of the reference session")
    p.add_argument("--session", default="", help="label of the reference session")
    p.add_argument("--participants", help="participants.tsv (lesion_side column overrides)")
    p.add_argument("--out", required=True, help="per-subject lesion side JSON")

    p = command("lesion-load", _cmd_load,
                "corticospinal-tract lesion load, MNI centroid, volume change")
    for opt, help_ in (("--lesion-mask", "lesion mask on the T1w grid"),
                       ("--t1w", "N4-corrected T1w"), ("--side", "per-subject lesion side JSON"),
                       ("--metrics", "this session's lesion metrics JSON"),
                       ("--atlas", "atlas regions on the T1w grid through the lesion-masked SyN "
                                   "(pipeline.templates.ATLAS_REGION_LABELS)"),
                       ("--xfm-syn", "ANTs transform resampling MNI into the T1w (maps T1w points "
                                     "to MNI; the lesion-masked SyN)"),
                       ("--out-metrics", "metrics JSON"), ("--out-figure", "QC figure (PNG)")):
        p.add_argument(opt, required=True, help=help_)
    p.add_argument("--baseline-metrics", help="lesion metrics JSON of the baseline session")
    p.add_argument("--is-baseline", action="store_true", help="this session is the baseline")
    p.add_argument("--max-growth", type=float, default=default("max_growth"),
                   help="plausibility gate: follow-up volume at most this times the baseline's")
    add_threads_option(p, help="ITK threads")
