"""Commands of the trial statistics.

* ``resstore stats``: every endpoint of a trial spec (``--spec``; without it the
  config ``stats`` section gives the default RESSTORE spec) -> results.tsv,
  exclusions.tsv, report.html. The only command that reads the allocation key.
* ``resstore dsmb-safety``: the blinded DSMB adverse-event tables from a coded
  key (groups A/B), never the arm labels.
* ``resstore simulate-clinical``: a clinical phantom of RESSTORE or ADUSE.
"""

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
        return pd.read_csv(
            path,
            sep="\t",
            na_values=["n/a"],
            dtype={"participant_id": str, "session": str},
            keep_default_na=True,
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PipelineInputError(path, f"{what} is not a readable TSV: {exc}") from exc


def _resolve(path, bids_dir) -> Path:
    path = Path(path)
    return path if path.is_absolute() or bids_dir is None else Path(bids_dir) / path


def _spec_and_tables(args):
    from pipeline.errors import PipelineInputError
    from pipeline.stats.trialspec import load_trial_spec, trial_spec_from_config

    if args.spec:
        if not args.bids_dir:
            raise PipelineInputError(
                "--bids-dir", "a trial spec names its tables relative to the BIDS folder"
            )
        spec = load_trial_spec(args.spec)
        files = {f: _resolve(f, args.bids_dir) for f in spec.files()}
    else:
        if not (args.sessions and args.baseline_session and args.phenotype):
            raise PipelineInputError(
                "resstore stats",
                "give --spec, or --sessions, --baseline-session and --phenotype (config route)",
            )
        spec = trial_spec_from_config(
            json.loads(args.stats_config),
            sessions=args.sessions,
            baseline_session=args.baseline_session,
            primary_file=args.phenotype,
        )
        files = {args.phenotype: Path(args.phenotype)}
    tables = {name: _read_tsv(path, f"table {name} of the trial spec") for name, path in files.items()}
    return spec, tables, files


def _outputs(args) -> dict:
    from pipeline.errors import PipelineInputError

    out = Path(args.out_dir) if args.out_dir else None
    paths = {}
    for key, name in (
        ("results", "results.tsv"),
        ("exclusions", "exclusions.tsv"),
        ("report", "report.html"),
    ):
        given = getattr(args, f"out_{key}")
        if not given and out is None:
            raise PipelineInputError(f"--out-{key}", "give --out-dir or every --out-* file")
        paths[key] = Path(given) if given else out / name
    paths["results_json"] = (
        Path(args.out_results_json) if args.out_results_json else paths["results"].with_suffix(".json")
    )
    return paths


def _cmd_stats(args) -> None:
    import pandas as pd

    from pipeline import __version__
    from pipeline.io import _atomic_write, read_json, write_json
    from pipeline.stats.analysis import analyse
    from pipeline.stats.data import EXCLUSION_COLUMNS
    from pipeline.stats.lesion_sources import lesion_source_counts
    from pipeline.stats.report import render
    from pipeline.stats.results import RESULT_DESCRIPTIONS
    from pipeline.stats.safety import safety_table, wide
    from pipeline.stats.sources import assemble

    spec, tables, files = _spec_and_tables(args)
    outputs = _outputs(args)
    participants_path = args.participants or (
        _resolve("participants.tsv", args.bids_dir) if args.bids_dir else None
    )
    paths = {
        "participants": str(participants_path),
        "allocation": args.allocation,
        "features": args.features or "",
        "ratings": args.ratings or "",
    }
    participants = _read_tsv(participants_path, "participants.tsv")
    features = _read_tsv(args.features, "feature table") if args.features else None
    data = assemble(
        spec=spec,
        participants=participants,
        allocation=_read_tsv(args.allocation, "allocation key"),
        tables=tables,
        features=features,
        dictionary=read_json(args.dictionary) if args.dictionary else {},
        ratings=_read_tsv(args.ratings, "QC ratings") if args.ratings else None,
        paths=paths,
    )
    log.info(
        "%s: %d outcome(s), %d subject(s), analysis sets %s",
        spec.trial,
        len(data.outcomes),
        len(data.subjects),
        list(spec.analysis_sets),
    )
    results, exclusions, details = analyse(data, spec)
    exclusions = pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS)
    for e in exclusions.itertuples():
        log.info(
            "excluded (%s) %s %s %s %s: %s",
            e.scope,
            e.participant_id,
            e.session,
            e.outcome,
            e.analysis_set,
            e.reason,
        )
    _atomic_write(
        outputs["results"],
        lambda tmp: results.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.10g"),
    )
    write_json(
        outputs["results_json"],
        {
            **{c: {"Description": d} for c, d in RESULT_DESCRIPTIONS.items()},
            "Arms": {"treated": spec.treated_arm, "control": spec.control_arm},
            "TrialSpec": spec.to_dict(),
            "GeneratedBy": {"Name": "resstore-pipeline", "Version": __version__},
        },
    )
    _atomic_write(
        outputs["exclusions"], lambda tmp: exclusions.to_csv(tmp, sep="\t", index=False, na_rep="n/a")
    )
    safety, notes = [], []
    if spec.dsmb and all(f in tables for f in (spec.dsmb["events"], spec.dsmb["followup"]["file"])):
        arm = data.subjects.set_index("participant_id")["arm"]
        table, notes = safety_table(spec, participants, arm, tables)
        safety = [{k: v for k, v in r.items() if k != "look"} for r in wide(table)]
    inputs = {
        k: Path(v).name for k, v in {**paths, **{f"table {n}": p for n, p in files.items()}}.items() if v
    }
    html = render(
        results=results,
        exclusions=exclusions,
        details=details,
        data=data,
        spec=spec,
        inputs=inputs,
        safety=safety,
        safety_notes=notes,
        lesion_sources=lesion_source_counts(features, spec.visits),
    )
    _atomic_write(outputs["report"], lambda tmp: Path(tmp).write_text(html))
    log.info("%d result rows -> %s; report -> %s", len(results), outputs["results"], outputs["report"])


def _cmd_dsmb(args) -> None:
    from jinja2 import Environment, StrictUndefined

    from pipeline import __version__
    from pipeline.errors import PipelineInputError
    from pipeline.io import _atomic_write
    from pipeline.stats.report_template import DSMB_TEMPLATE
    from pipeline.stats.safety import coded_groups, safety_table, wide
    from pipeline.stats.trialspec import load_trial_spec

    spec = load_trial_spec(args.spec)
    if not spec.dsmb:
        raise PipelineInputError(args.spec, "no dsmb section in the trial spec")
    tables = {
        f: _read_tsv(_resolve(f, args.bids_dir), f"table {f}")
        for f in (spec.dsmb["events"], spec.dsmb["followup"]["file"])
    }
    participants = _read_tsv(
        args.participants or _resolve("participants.tsv", args.bids_dir), "participants.tsv"
    )
    groups = coded_groups(_read_tsv(args.groups, "coded allocation key"), spec, path=args.groups)
    table, notes = safety_table(spec, participants, groups, tables, looks=spec.dsmb["looks"])
    for n in notes:
        log.warning("%s", n)
    _atomic_write(
        Path(args.out_tsv),
        lambda tmp: table.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.4g"),
    )
    rows = wide(table)
    by_look = {}
    for r in rows:
        by_look.setdefault(r["look"], []).append(r)
    html = (
        Environment(autoescape=True, undefined=StrictUndefined)
        .from_string(DSMB_TEMPLATE)
        .render(
            trial=spec.trial,
            groups_file=Path(args.groups).name,
            looks=spec.dsmb["looks"],
            days=f"{spec.dsmb['completed_after_days']:g}",
            order_by=spec.dsmb["order_by"],
            version=__version__,
            notes=notes,
            by_look=list(by_look.items()),
        )
    )
    _atomic_write(Path(args.out_report), lambda tmp: Path(tmp).write_text(html))
    log.info("DSMB tables (%d looks) -> %s, %s", len(by_look), args.out_tsv, args.out_report)


def _cmd_simulate_clinical(args) -> None:
    import numpy as np

    from pipeline.io import write_json
    from pipeline.simulate.clinical import simulate_clinical_trial

    out = Path(args.out)
    ph = simulate_clinical_trial(
        args.trial, np.random.default_rng(args.seed), args.subjects, with_features=not args.no_features
    )
    bids = out / "bids"
    (bids / "phenotype").mkdir(parents=True, exist_ok=True)
    write_json(
        bids / "dataset_description.json",
        {"Name": f"{args.trial} clinical phantom", "BIDSVersion": "1.9.0", "DatasetType": "raw"},
    )
    ph["participants"].to_csv(bids / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    for name, table in ph["tables"].items():
        (bids / name).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(bids / name, sep="\t", index=False, na_rep="n/a")
    ph["allocation"].to_csv(out / "allocation.tsv", sep="\t", index=False)
    ph["allocation_coded"].to_csv(out / "allocation_coded.tsv", sep="\t", index=False)
    if ph["features"] is not None:
        ph["features"].to_csv(out / "features.tsv", sep="\t", index=False, na_rep="n/a")
        write_json(out / "features.json", ph["dictionary"])
    write_json(out / "truth" / "effects.json", {"planted": ph["effects"], "estimands": ph["truth"]})
    log.info("%s clinical phantom (%d subjects, seed %d) -> %s", args.trial, args.subjects, args.seed, out)


def register(command) -> None:
    p = command(
        "stats", _cmd_stats, "trial statistics of a trial spec: every endpoint, FDR, report (unblinded)"
    )
    p.add_argument(
        "--spec",
        help="trial spec YAML (configs/trials/resstore.yaml, aduse.yaml); without it the "
        "config 'stats' section (--stats-config) gives the default RESSTORE spec",
    )
    p.add_argument("--bids-dir", help="BIDS folder the spec's tables are relative to")
    p.add_argument("--features", help="features.tsv (imaging endpoints)")
    p.add_argument("--dictionary", help="features.json")
    p.add_argument("--participants", help="participants.tsv (default: BIDS folder's)")
    p.add_argument("--allocation", required=True, help="allocation key TSV (participant_id, arm)")
    p.add_argument("--ratings", default="", help="QC ratings TSV (optional)")
    p.add_argument("--phenotype", help="config route: primary endpoint table (phenotype/nihss.tsv)")
    p.add_argument("--stats-config", default="{}", help="config route: the config 'stats' section as JSON")
    p.add_argument("--sessions", nargs="+", help="config route: config sessions (visit order)")
    p.add_argument("--baseline-session", help="config route: baseline session")
    p.add_argument("--out-dir", help="write results.tsv, results.json, exclusions.tsv, report.html here")
    p.add_argument("--out-results", help="stats/results.tsv")
    p.add_argument("--out-results-json", help="column dictionary of results.tsv (default: beside it)")
    p.add_argument("--out-exclusions", help="stats/exclusions.tsv")
    p.add_argument("--out-report", help="stats/report.html")

    p = command("dsmb-safety", _cmd_dsmb, "blinded DSMB adverse-event tables (groups A/B from a coded key)")
    p.add_argument("--spec", required=True, help="trial spec YAML with a dsmb section")
    p.add_argument("--bids-dir", required=True, help="BIDS folder the spec's tables are relative to")
    p.add_argument("--participants", help="participants.tsv (default: BIDS folder's)")
    p.add_argument("--groups", required=True, help="coded key TSV: participant_id, group (A/B)")
    p.add_argument("--out-tsv", required=True, help="safety tables (TSV)")
    p.add_argument("--out-report", required=True, help="blinded DSMB report (HTML)")

    p = command("simulate-clinical", _cmd_simulate_clinical, "clinical phantom of a trial (tables only)")
    p.add_argument("--trial", choices=("resstore", "aduse"), required=True,
                   help="which trial's clinical phantom")
    p.add_argument("--out", required=True, help="bids/, allocation.tsv, allocation_coded.tsv, truth/")
    p.add_argument("--subjects", type=int, default=80, help="number of participants")
    p.add_argument("--seed", type=int, default=1, help="random seed")
    p.add_argument("--no-features", action="store_true", help="RESSTORE: no features.tsv")
