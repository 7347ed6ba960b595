"""``resstore stats``: the trial statistics (the only command that reads the allocation key)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _read_tsv(path, what):
    import pandas as pd

    from pipeline.errors import PipelineInputError

    if not Path(path).is_file():
        raise PipelineInputError(path, f"{what} not found")
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], dtype={"participant_id": str,
                                                                     "session": str})
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PipelineInputError(path, f"{what} is not a readable TSV: {exc}") from exc


def _cmd_stats(args) -> None:
    import pandas as pd

    from pipeline import __version__
    from pipeline.io import _atomic_write, read_json, write_json
    from pipeline.stats.analysis import RESULT_DESCRIPTIONS, analyse
    from pipeline.stats.data import assemble
    from pipeline.stats.report import change_summary, render
    from pipeline.stats.spec import AnalysisSpec

    spec = AnalysisSpec.from_config(json.loads(args.stats_config), sessions=args.sessions,
                                    baseline_session=args.baseline_session)
    paths = {"features": args.features, "phenotype": args.phenotype, "participants": args.participants,
             "allocation": args.allocation, "ratings": args.ratings or ""}
    data = assemble(
        features=_read_tsv(args.features, "feature table"), dictionary=read_json(args.dictionary),
        phenotype=_read_tsv(args.phenotype, "phenotype table"),
        participants=_read_tsv(args.participants, "participants.tsv"),
        allocation=_read_tsv(args.allocation, "allocation key"),
        ratings=_read_tsv(args.ratings, "QC ratings") if args.ratings else None,
        spec=spec, paths=paths)
    log.info("%d outcome(s), %d subject(s), analysis sets %s", len(data.outcomes), len(data.subjects),
             list(spec.analysis_sets))
    results, exclusions, details = analyse(data, spec)
    exclusions = pd.DataFrame(exclusions, columns=["scope", "participant_id", "session", "outcome",
                                                   "analysis_set", "reason"])
    for e in exclusions.itertuples():
        log.info("excluded (%s) %s %s %s %s: %s", e.scope, e.participant_id, e.session, e.outcome,
                 e.analysis_set, e.reason)
    _atomic_write(Path(args.out_results), lambda tmp: results.to_csv(
        tmp, sep="\t", index=False, na_rep="n/a", float_format="%.6g"))
    write_json(args.out_results_json or Path(args.out_results).with_suffix(".json"), {
        **{c: {"Description": d} for c, d in RESULT_DESCRIPTIONS.items()},
        "Arms": {"treated": spec.treated_arm, "control": spec.control_arm},
        "AnalysisSpec": spec.to_dict(), "GeneratedBy": {"Name": "resstore-pipeline", "Version": __version__}})
    _atomic_write(Path(args.out_exclusions), lambda tmp: exclusions.to_csv(
        tmp, sep="\t", index=False, na_rep="n/a"))
    html = render(results=results, exclusions=exclusions, details=details, summary=change_summary(data, spec),
                  spec=spec, outcomes=data.outcomes, notes=data.notes,
                  inputs={k: Path(v).name for k, v in paths.items() if v})
    _atomic_write(Path(args.out_report), lambda tmp: Path(tmp).write_text(html))
    log.info("%d result rows -> %s; report -> %s", len(results), args.out_results, args.out_report)


def register(command) -> None:
    p = command("stats", _cmd_stats, "trial statistics: MMRM treatment x visit, FDR, report (unblinded)")
    p.add_argument("--features", required=True, help="features.tsv")
    p.add_argument("--dictionary", required=True, help="features.json")
    p.add_argument("--participants", required=True, help="BIDS participants.tsv")
    p.add_argument("--phenotype", required=True, help="primary endpoint table (phenotype/nihss.tsv)")
    p.add_argument("--allocation", required=True, help="allocation key TSV (participant_id, arm)")
    p.add_argument("--ratings", default="", help="QC ratings TSV (optional)")
    p.add_argument("--stats-config", default="{}", help="the config 'stats' section as JSON")
    p.add_argument("--sessions", nargs="+", required=True, help="config sessions (visit order)")
    p.add_argument("--baseline-session", required=True)
    p.add_argument("--out-results", required=True, help="stats/results.tsv")
    p.add_argument("--out-results-json", help="column dictionary of results.tsv (default: beside it)")
    p.add_argument("--out-exclusions", required=True, help="stats/exclusions.tsv")
    p.add_argument("--out-report", required=True, help="stats/report.html")
