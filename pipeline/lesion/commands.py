"""``resstore lesion-*`` commands (one per rule of workflow/rules/lesion.smk)."""

from __future__ import annotations

import logging

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
        out_figure=args.out_figure, manual_overrides=args.manual_overrides,
        options=dict(seed_z=args.seed_z, grow_z=args.grow_z,
                     seed_smoothing_mm=args.seed_smoothing_mm,
                     asymmetry_z=args.asymmetry_z, min_component_ml=args.min_component_ml,
                     core_enclosure=args.core_enclosure,
                     brain_dilation_mm=args.brain_dilation_mm),
        bilateral_fraction=args.bilateral_fraction,
        registration_voxel_mm=args.registration_voxel_mm,
        n4_shrink_factor=args.n4_shrink_factor)


def _cmd_side(args) -> None:
    from pipeline.lesion.run import subject_side

    subject_side(subject=args.subject, metrics=args.metrics, participants=args.participants,
                 out=args.out, session=args.session)


def _cmd_load(args) -> None:
    from pipeline.antsio import set_threads

    set_threads(args.threads)
    from pipeline.lesion.run import lesion_load

    lesion_load(lesion_mask=args.lesion_mask, t1w=args.t1w, side_json=args.side,
                xfm=args.xfm, atlas=args.atlas, xfm_syn=args.xfm_syn,
                metrics=args.metrics, baseline_metrics=args.baseline_metrics,
                is_baseline=args.is_baseline, out_metrics=args.out_metrics,
                out_figure=args.out_figure)


def register(command) -> None:
    p = command("lesion-segment", _cmd_segment,
                "FLAIR to T1w, automatic (or manual) lesion mask, volume and side")
    for opt in ("--t1w", "--t1w-raw", "--brain-mask", "--xfm", "--out-mask", "--out-metrics",
                "--out-figure"):
        p.add_argument(opt, required=True)
    p.add_argument("--flair", help="raw FLAIR (omit: no automatic segmentation)")
    p.add_argument("--manual", help="manual *_label-lesion_roi mask on the T1w grid")
    p.add_argument("--manual-overrides", type=_bool, default=True,
                   help="use the manual mask instead of the automatic one (true/false)")
    p.add_argument("--seed-z", type=float, default=3.5)
    p.add_argument("--seed-smoothing-mm", type=float, default=1.0)
    p.add_argument("--grow-z", type=float, default=1.0)
    p.add_argument("--asymmetry-z", type=float, default=2.0)
    p.add_argument("--min-component-ml", type=float, default=0.1)
    p.add_argument("--core-enclosure", type=float, default=0.6)
    p.add_argument("--brain-dilation-mm", type=float, default=2.0)
    p.add_argument("--bilateral-fraction", type=float, default=0.2)
    p.add_argument("--registration-voxel-mm", type=float, default=2.0)
    p.add_argument("--n4-shrink-factor", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)

    p = command("lesion-side", _cmd_side, "lesion side of one subject (baseline lesion)")
    p.add_argument("--subject", required=True, help="label without sub-")
    p.add_argument("--metrics", help="lesion metrics JSON of the reference session")
    p.add_argument("--session", default="", help="label of the reference session")
    p.add_argument("--participants", help="participants.tsv (lesion_side column overrides)")
    p.add_argument("--out", required=True)

    p = command("lesion-load", _cmd_load,
                "corticospinal-tract lesion load, MNI centroid, volume change")
    for opt in ("--lesion-mask", "--t1w", "--side", "--xfm", "--metrics", "--out-metrics",
                "--out-figure"):
        p.add_argument(opt, required=True)
    p.add_argument("--atlas", help="atlas dseg in T1w space (pipeline.templates.ATLAS_REGION_LABELS); "
                   "default: the Juelich CST brought through the affine --xfm")
    p.add_argument("--xfm-syn", help="ANTs transform resampling MNI into T1w (maps T1w points "
                   "to MNI) for the centroid; default: the affine --xfm")
    p.add_argument("--baseline-metrics", help="lesion metrics JSON of the baseline session")
    p.add_argument("--is-baseline", action="store_true")
    p.add_argument("--threads", type=int, default=1)

