"""``resstore`` commands of the QC reports and ratings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipeline.errors import PipelineInputError

log = logging.getLogger(__name__)

MAX_PAGE_BYTES = 5 * 1024 * 1024


def _ratings(path):
    from pipeline.report.ratings import read_ratings

    return read_ratings(path) if path else None


def _report_session(args) -> None:
    from pipeline.report.pages import read_table, session_context
    from pipeline.report.render import render_page

    try:
        reportlets = json.loads(args.reportlets) if args.reportlets else []
    except json.JSONDecodeError as exc:
        raise PipelineInputError("--reportlets", f"not JSON ({exc})") from exc
    participant = args.participant
    context = session_context(
        participant, args.session, reportlets=reportlets, features=read_table(args.features),
        inventory=read_table(args.inventory), ratings=_ratings(args.ratings),
        threshold=args.outlier_robust_z, min_sessions=args.outlier_min_sessions, study=args.study)
    size = render_page("report_session.html.j2", context, args.out)
    log.info("%s ses-%s: %d reportlet(s), %.2f MB -> %s", participant, args.session,
             len(reportlets), size / 1e6, args.out)
    if size > MAX_PAGE_BYTES:
        log.warning("%s is %.1f MB (target <= 5 MB): make the reportlet PNGs smaller",
                    args.out, size / 1e6)


def _report_index(args) -> None:
    from pipeline.report.pages import dashboard_context, read_table
    from pipeline.report.render import render_page

    context = dashboard_context(features=read_table(args.features),
                                inventory=read_table(args.inventory),
                                ratings=_ratings(args.ratings), threshold=args.outlier_robust_z,
                                min_sessions=args.outlier_min_sessions,
                                study=args.study)
    size = render_page("report_index.html.j2", context, args.out)
    log.info("dashboard: %d sessions, %.2f MB -> %s", len(context["rows"]), size / 1e6, args.out)


def _report_review(args) -> None:
    from urllib.parse import quote

    from pipeline.report.pages import page_name
    from pipeline.report.render import render_page
    from pipeline.report.review import ReviewInputs, review_context

    inputs = ReviewInputs(t1w=args.t1w, mask=args.mask, brain_mask=args.brain_mask,
                          flair=args.flair, zmap=args.zmap,
                          z_threshold=args.z_threshold, fa=args.fa, v1=args.v1,
                          xfm_dwi_to_t1w=args.xfm_dwi_to_t1w)
    context = review_context(args.participant, args.session, inputs,
                             qc_page=quote(page_name(args.participant, args.session)))
    scripts = ("review.js",) if context["unavailable"] else ("vendor/niivue/niivue.js", "review.js")
    size = render_page("report_review.html.j2", context, args.out, scripts=scripts,
                       styles=("report.css", "review.css"))
    log.info("%s ses-%s: lesion review page, %.2f MB -> %s", args.participant, args.session,
             size / 1e6, args.out)


def _qc_apply_ratings(args) -> None:
    import pandas as pd

    from pipeline.io import _atomic_write
    from pipeline.report.ratings import merge_ratings

    table = pd.read_csv(args.features, sep="\t", dtype=str, keep_default_na=False)
    merged = merge_ratings(table, _ratings(args.ratings))
    out = Path(args.out or args.features)
    _atomic_write(out, lambda tmp: merged.to_csv(tmp, sep="\t", index=False, na_rep="n/a"))
    failed = (merged["qc_excluded_streams"] != "").sum()
    log.info("%d session(s) with excluded streams -> %s", failed, out)


def register(command) -> None:
    from pipeline.config import schema_default

    def group_options(p) -> None:
        p.add_argument("--features", required=True, help="group features.tsv")
        p.add_argument("--inventory", required=True, help="sessions.tsv")
        p.add_argument("--ratings", help="qc/ratings.tsv (optional; qc.ratings)")
        p.add_argument("--outlier-robust-z", type=float,
                       default=schema_default("qc", "outlier_robust_z"),
                       help="flag a metric whose |robust z| over the group exceeds this "
                            "(qc.outlier_robust_z)")
        p.add_argument("--outlier-min-sessions", type=int,
                       default=schema_default("qc", "outlier_min_sessions"),
                       help="flag outliers only in a group of at least this many sessions "
                            "(qc.outlier_min_sessions)")
        p.add_argument("--study", required=True,
                       help="study identifier; names the browser storage shared by the study's pages")

    p = command("report-session", _report_session, "self-contained QC page of one session")
    p.add_argument("--participant", required=True, help="sub-<label>")
    p.add_argument("--session", required=True, help="session label (no ses-)")
    p.add_argument("--reportlets", default="[]",
                   help="JSON list of {modality, step, title, figure, metrics, caption, methods}")
    group_options(p)
    p.add_argument("--out", required=True, help="reports/sub-X_ses-Y.html")

    p = command("report-index", _report_index, "QC dashboard of every session (index.html)")
    group_options(p)
    p.add_argument("--pages", nargs="*", help="session pages (dependencies only)")
    p.add_argument("--out", required=True, help="reports/index.html")

    p = command("report-review", _report_review,
                "self-contained lesion review page of one session (NiiVue editor, offline)")
    p.add_argument("--participant", required=True, help="sub-<label>")
    p.add_argument("--session", required=True, help="session label (no ses-)")
    p.add_argument("--t1w", required=True, help="N4-corrected T1w (desc-preproc, canonical grid)")
    p.add_argument("--mask", required=True,
                   help="the session's lesion mask on the T1w grid (space-T1w_desc-lesion_mask)")
    p.add_argument("--brain-mask", help="brain mask on the T1w grid: the page shows it dilated by "
                   "10 mm (without it: the head, by intensity)")
    p.add_argument("--flair", help="FLAIR registered to the T1w (space-T1w_desc-preproc_FLAIR)")
    p.add_argument("--zmap", help="motor-task z-map on the T1w grid (func stream)")
    p.add_argument("--z-threshold", type=float, default=schema_default("func", "z_threshold"),
                   help="z-map voxels with |z| below this are not shown (func.z_threshold)")
    p.add_argument("--fa", help="FA on the DWI grid (dwi stream; with --v1 and --xfm-dwi-to-t1w)")
    p.add_argument("--v1", help="principal eigenvector on the DWI grid (dwi stream)")
    p.add_argument("--xfm-dwi-to-t1w", help="ANTs rigid DWI -> T1w of the dwi stream")
    p.add_argument("--out", required=True, help="reports/sub-X_ses-Y_review.html")

    p = command("qc-apply-ratings", _qc_apply_ratings,
                "add <modality>_rating, qc_status, qc_excluded_streams to features.tsv")
    p.add_argument("--features", required=True, help="features.tsv")
    p.add_argument("--ratings", help="qc/ratings.tsv; without it every session is 'unrated'")
    p.add_argument("--out", help="output TSV (default: rewrite --features)")
