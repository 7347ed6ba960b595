"""Command-line entry points: ``resstore <command>``.

Snakemake rules call these (one command per rule); they are also usable by
hand. Every command takes ``--log``; bad input exits with status 2 and one
line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.errors import PipelineInputError
from pipeline.io import private_tempdir

log = logging.getLogger("pipeline")


def _setup_logging(path: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _cmd_simulate(args) -> None:
    from pipeline.simulate import TrialSpec, simulate_trial

    spec = TrialSpec(
        n_subjects=args.subjects, seed=args.seed, anat_voxel_mm=args.anat_voxel_mm,
        dwi_voxel_mm=args.dwi_voxel_mm, bold_voxel_mm=args.bold_voxel_mm,
        n_bold_volumes=args.bold_volumes, n_dwi_directions=args.dwi_directions,
        lesion_free_fraction=args.lesion_free_fraction,
        manual_mask_fraction=args.manual_mask_fraction,
        bold_null_fraction=args.bold_null_fraction, dropout_fraction=args.dropout_fraction,
        effect_nihss=args.effect_nihss, storage=args.storage,
    )
    paths = simulate_trial(args.out, spec)
    log.info("BIDS dataset: %s; allocation key: %s; truth: %s",
             paths["bids"], paths["allocation"], paths["truth"])


def _cmd_inventory(args) -> None:
    from pipeline.bids import cached_inventory, discover
    from pipeline.io import _atomic_write

    options = dict(sessions=args.sessions, task=args.task,
                   participant_label=args.participant_label or [], exclude=args.exclude or [],
                   lesion_roi_dir=args.lesion_roi_dir)
    inv = (cached_inventory(args.bids_dir, args.cache_dir, **options) if args.cache_dir
           else discover(args.bids_dir, **options))
    _atomic_write(Path(args.out), lambda tmp: inv.to_csv(tmp, sep="\t", index=False,
                                                        na_rep="n/a"))
    for row in inv.itertuples():
        if row.problems:
            log.warning("%s ses-%s: %s", row.participant_id, row.session, row.problems)


def _cmd_flair_qc(args) -> None:
    from pipeline.io import write_json
    from pipeline.orientation import read_image
    from pipeline.qc.modality import flair_metrics

    write_json(args.out_metrics, flair_metrics(read_image(args.flair, what="FLAIR")))


def _cmd_dwi_qc(args) -> None:
    from pipeline.dwi.gradients import load_dwi
    from pipeline.io import write_json
    from pipeline.qc.modality import dwi_metrics

    dwi = load_dwi(args.dwi, args.bval, args.bvec)
    write_json(args.out_metrics, dwi_metrics(dwi.image, dwi.bvals, dwi.bvecs))


def _cmd_session_features(args) -> None:
    import pandas as pd

    from pipeline.features.table import session_row
    from pipeline.io import write_json

    metric_files: dict[str, list[str]] = {}
    for item in args.metrics or []:
        stream, path = item.split("=", 1)
        metric_files.setdefault(stream, []).append(path)
    inv = pd.read_csv(args.inventory, sep="\t", keep_default_na=False)
    match = inv[(inv.participant_id == args.participant) & (inv.session == args.session)]
    inv_row = match.iloc[0].to_dict() if len(match) else None
    write_json(args.out, session_row(args.participant, args.session, metric_files,
                                     inventory_row=inv_row, config_hash=args.config_hash))


def _cmd_collect_features(args) -> None:
    from pipeline.features.table import data_dictionary, feature_table
    from pipeline.io import _atomic_write, read_json, write_json
    from pipeline.report.ratings import merge_ratings, read_ratings

    table = feature_table([read_json(p) for p in args.rows])
    table = merge_ratings(table, read_ratings(args.ratings[0]) if args.ratings else None)
    _atomic_write(Path(args.out_tsv),
                  lambda tmp: table.to_csv(tmp, sep="\t", index=False, na_rep="n/a"))
    write_json(args.out_json, data_dictionary(table))
    log.info("%d rows x %d columns -> %s", len(table), table.shape[1], args.out_tsv)


def _cmd_dataset_description(args) -> None:
    from pipeline import PIPELINE_NAME, __version__
    from pipeline.io import write_json

    write_json(args.out, {
        "Name": "RESSTORE imaging biomarkers",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": PIPELINE_NAME, "Version": __version__,
                         **({"Container": {"Type": "apptainer", "URI": args.container}}
                            if args.container else {})}],
        "SourceDatasets": [{"URL": Path(args.bids_dir).resolve().as_uri()}],
    })


def _cmd_unlock(args) -> None:
    from pipeline.lock import force_unlock

    held = force_unlock(args.output_dir)
    if held:
        log.info("%s: removed the lock of PID %s on %s (started %s)", args.output_dir,
                 held.get("pid"), held.get("host"), held.get("started"))
    else:
        log.info("%s: no lock", args.output_dir)


def _cmd_validate_config(args) -> None:
    from pipeline.config import load_config

    load_config(*args.files)
    log.info("configuration valid: %s", ", ".join(args.files))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resstore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, help_):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--log", help="log file (also printed to stderr)")
        p.add_argument("--on-error", choices=("fail", "record"), default="fail",
                       help="on a named input error: fail (exit status 2) or record (write a "
                            "status record in place of every --out-* file and exit 0, so the "
                            "session's other streams, feature row and QC page are still built; "
                            "see pipeline.status)")
        return p

    p = command("simulate", _cmd_simulate, "write a phantom trial (BIDS + allocation + truth)")
    p.add_argument("--out", required=True, help="output folder (bids/, truth/, allocation.tsv)")
    p.add_argument("--subjects", type=int, default=4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--anat-voxel-mm", type=float, default=1.0)
    p.add_argument("--dwi-voxel-mm", type=float, default=2.0)
    p.add_argument("--bold-voxel-mm", type=float, default=3.0)
    p.add_argument("--bold-volumes", type=int, default=150)
    p.add_argument("--dwi-directions", type=int, default=30)
    p.add_argument("--lesion-free-fraction", type=float, default=0.0)
    p.add_argument("--manual-mask-fraction", type=float, default=0.0)
    p.add_argument("--bold-null-fraction", type=float, default=0.0)
    p.add_argument("--dropout-fraction", type=float, default=0.0)
    p.add_argument("--effect-nihss", type=float, default=-1.5,
                   help="treated minus control 6-month NIHSS motor score (points)")
    p.add_argument("--storage", choices=("random", "RAS", "LAS", "LPS", "oblique"),
                   default="random",
                   help="how each session's images are stored: random (per session, RAS, LAS, "
                        "LPS or oblique up to 15 degrees, as scanners store them) or one for all")

    p = command("inventory", _cmd_inventory, "discover sessions and write sessions.tsv")
    p.add_argument("--bids-dir", required=True)
    p.add_argument("--sessions", nargs="+", required=True)
    p.add_argument("--task", default="motor")
    p.add_argument("--participant-label", nargs="*")
    p.add_argument("--exclude", nargs="*")
    p.add_argument("--lesion-roi-dir", help="extra folder of manual lesion masks")
    p.add_argument("--cache-dir", help="inventory cache (the workflow's <output_dir>/.resstore): "
                   "the dataset is indexed once per state and configuration")
    p.add_argument("--out", required=True, help="sessions.tsv")

    p = command("flair-qc", _cmd_flair_qc, "FLAIR image-quality metrics")
    p.add_argument("--flair", required=True)
    p.add_argument("--out-metrics", required=True)

    p = command("dwi-qc", _cmd_dwi_qc, "DWI checks and image-quality metrics")
    for opt in ("--dwi", "--bval", "--bvec", "--out-metrics"):
        p.add_argument(opt, required=True)

    p = command("session-features", _cmd_session_features, "one session's feature row")
    p.add_argument("--participant", required=True)
    p.add_argument("--session", required=True)
    p.add_argument("--metrics", nargs="*", help="stream=metrics.json pairs")
    p.add_argument("--inventory", required=True)
    p.add_argument("--config-hash", default="")
    p.add_argument("--out", required=True)

    p = command("collect-features", _cmd_collect_features, "group features.tsv + features.json")
    p.add_argument("--rows", nargs="+", required=True)
    p.add_argument("--ratings", nargs="*", help="qc/ratings.tsv (QC reviewer ratings), optional")
    p.add_argument("--out-tsv", required=True)
    p.add_argument("--out-json", required=True)

    p = command("dataset-description", _cmd_dataset_description,
                "derivatives dataset_description.json")
    p.add_argument("--bids-dir", required=True)
    p.add_argument("--container", default="")
    p.add_argument("--out", required=True)

    p = command("unlock", _cmd_unlock,
                "remove an output folder's run lock (only once the run holding it is gone)")
    p.add_argument("--output-dir", required=True, help="the workflow's output_dir")

    p = command("validate-config", _cmd_validate_config, "validate config YAML file(s)")
    p.add_argument("files", nargs="+")

    # Each analysis subpackage may add commands in ``pipeline/<stream>/commands.py``
    # through ``register(command)``; ``command(name, func, help)`` returns its parser.
    for module in _command_modules():
        module.register(command)
    return parser


def _command_modules():
    import importlib
    import pkgutil

    import pipeline

    for info in sorted(pkgutil.iter_modules(pipeline.__path__), key=lambda i: i.name):
        if info.ispkg:
            try:
                yield importlib.import_module(f"pipeline.{info.name}.commands")
            except ModuleNotFoundError as exc:
                if exc.name != f"pipeline.{info.name}.commands":
                    raise


def _paths(value) -> list[str]:
    """File paths in an argument value (str, list; ``NAME=path`` pairs give the path)."""
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if isinstance(item, str | Path) and str(item):
            text = str(item)
            out.append(text.split("=", 1)[1] if "=" in text and not Path(text).exists() else text)
    return out


def _outputs(args) -> list[str]:
    return [p for key, value in vars(args).items() if key.startswith("out_") for p in _paths(value)]


def _upstream_failure(args) -> dict | None:
    """The status record of the first input that is one (None when every input is data)."""
    from pipeline import status

    for key, value in vars(args).items():
        if key.startswith("out_") or key in ("log", "func", "command"):
            continue
        for path in _paths(value):
            record = status.read_record(path) if Path(path).is_file() else None
            if record is not None:
                return record
    return None


def main(argv=None) -> int:
    from pipeline import status

    args = build_parser().parse_args(argv)
    _setup_logging(args.log)
    where = {"rule": status.rule_of_log(args.log) or args.command,
             "log": status.relative_log(args.log)}
    if args.on_error == "record":
        upstream = _upstream_failure(args)
        if upstream is not None:
            log.error("an input is a status record (%s): not run", status.describe(upstream))
            status.write_records(_outputs(args), {
                "status": "failed upstream", "error": upstream.get("error", ""),
                "upstream_rule": upstream.get("upstream_rule") or upstream.get("rule"), **where})
            return 0
    try:
        with private_tempdir():  # ANTsPy's temporary files go with the command
            args.func(args)
    except PipelineInputError as exc:
        log.error("%s", exc)
        if args.on_error == "record":
            status.write_records(_outputs(args), {"status": "failed", "error": str(exc), **where})
            return 0
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
