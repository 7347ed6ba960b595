"""Command-line entry points: ``resstore <command>``.

Snakemake rules call these (one command per rule); they are also usable by
hand. Every command takes ``--log``; bad input exits with status 2 and one
line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from pipeline import PIPELINE_NAME, __version__
from pipeline.errors import PipelineInputError
from pipeline.io import private_tempdir

log = logging.getLogger("pipeline")


def _setup_logging(path: str | None, *, capture_output: bool = False) -> None:
    """Log to stderr and ``path``; Python warnings are logged too.

    With ``capture_output`` (a ``resstore`` process, not an in-process call) and a log
    path, the process's own stdout and stderr are sent to the log file at the file
    descriptor level, so what ANTs/ITK and other compiled libraries print lands in the
    rule's log as well.
    """
    logging.captureWarnings(True)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if capture_output:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        else:
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
        tissue_contrast=args.tissue_contrast,
        dwi_susceptibility_mm=args.dwi_susceptibility_mm,
        dwi_reverse_pe=args.dwi_reverse_pe == "yes",
    )
    paths = simulate_trial(args.out, spec)
    log.info("BIDS dataset: %s; allocation key: %s; truth: %s",
             paths["bids"], paths["allocation"], paths["truth"])


def _cmd_inventory(args) -> None:
    from pipeline.bids import cached_inventory, discover
    from pipeline.io import _atomic_write

    options = dict(sessions=args.sessions, task=args.task,
                   participant_label=args.participant_label or [], exclude=args.exclude or [],
                   lesion_roi_dir=args.lesion_roi_dir, reviewed_dir=args.reviewed_dir)
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

    out_dir = Path(args.out).resolve().parent
    raw = Path(args.bids_dir).resolve()
    write_json(args.out, {
        "Name": "RESSTORE imaging biomarkers",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": PIPELINE_NAME, "Version": __version__,
                         "Container": container_record()}],
        # BIDS URIs of every sidecar ("bids:raw:...") resolve through DatasetLinks
        "DatasetLinks": {"raw": os.path.relpath(raw, out_dir)},
    })
    Path(args.out_bidsignore).write_text("\n".join(BIDSIGNORE) + "\n")
    Path(args.out_readme).write_text(
        "RESSTORE imaging biomarkers: BIDS derivatives written by resstore-pipeline "
        f"{__version__}.\n\nfeatures.tsv holds one row per participant and session (data "
        "dictionary: features.json); each image derivative has a JSON sidecar with its sources "
        "(BIDS URIs, raw dataset in DatasetLinks), parameters and grid. reports/ holds the QC "
        "pages, logs/ and benchmarks/ one file per rule and session.\n")


# outputs that are not BIDS derivatives (for bids-validator and other BIDS tools)
BIDSIGNORE = ("logs/", "benchmarks/", "reports/", "stats/", ".resstore/", ".resstore.lock",
              "sessions.tsv", "features.tsv", "features.json", "sub-*/sub-*_desc-lesionside_metrics.json",
              "**/figures/", "*_metrics.json", "*_xfm.mat", "*_xfm.h5", "*_timeseries.tsv",
              "*_design.tsv", "*_thickness.tsv", "*_dwi.bval", "*_dwi.bvec", "*_features.json")


def container_record() -> dict:
    """What ran the pipeline: the Apptainer/Singularity image (path and SHA-256 of the
    image file, read from the environment the container runtime sets), or the Python
    environment (interpreter and the lock file's hash) when no container is used."""
    import hashlib
    import platform

    image = os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER")
    if image and Path(image).is_file():
        digest = hashlib.sha256()
        with open(image, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return {"Type": "apptainer", "Tag": Path(image).name, "Digest": f"sha256:{digest.hexdigest()}"}
    return {"Type": "none", "Description": f"Python {platform.python_version()} environment "
                                           "pinned by requirements.lock (no container)"}


def _cmd_unlock(args) -> None:
    from pipeline.lock import force_unlock

    held = force_unlock(args.output_dir)
    if held:
        log.info("%s: removed the lock of PID %s on %s (started %s)", args.output_dir,
                 held.get("pid"), held.get("host"), held.get("started"))
    else:
        log.info("%s: no lock", args.output_dir)


def _cmd_config_reference(args) -> None:
    from pipeline.config import reference_markdown

    Path(args.out).write_text(reference_markdown())
    log.info("configuration reference -> %s", args.out)


def _cmd_validate_config(args) -> None:
    from pipeline.config import load_config

    load_config(*args.files)
    log.info("configuration valid: %s", ", ".join(args.files))


def build_parser() -> argparse.ArgumentParser:
    from pipeline.config import schema_default

    parser = argparse.ArgumentParser(prog="resstore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, help_):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--log", help="log file: the command's messages, Python warnings and what "
                                     "compiled libraries (ANTs/ITK) print")
        p.add_argument("--on-error", choices=("fail", "record"), default="fail",
                       help="on a named input error: fail (exit status 2) or record (write a "
                            "status record in place of every --out-* file and exit 0, so the "
                            "session's other streams, feature row and QC page are still built; "
                            "see pipeline.status)")
        return p

    p = command("simulate", _cmd_simulate, "write a phantom trial (BIDS + allocation + truth)")
    p.add_argument("--out", required=True, help="output folder (bids/, truth/, allocation.tsv)")
    p.add_argument("--subjects", type=int, default=4, help="number of participants")
    p.add_argument("--seed", type=int, default=42, help="random seed (the same seed, the same trial)")
    p.add_argument("--anat-voxel-mm", type=float, default=1.0, help="T1w/FLAIR voxel size (mm)")
    p.add_argument("--dwi-voxel-mm", type=float, default=2.0, help="DWI voxel size (mm)")
    p.add_argument("--bold-voxel-mm", type=float, default=3.0, help="BOLD voxel size (mm)")
    p.add_argument("--bold-volumes", type=int, default=150, help="volumes of the motor-task run")
    p.add_argument("--dwi-directions", type=int, default=30, help="diffusion-weighted directions")
    p.add_argument("--dwi-susceptibility-mm", type=float, default=3.0,
                   help="peak susceptibility displacement of the DWI in the brain (mm along "
                        "phase encoding; 0 for none)")
    p.add_argument("--dwi-reverse-pe", choices=("yes", "no"), default="yes",
                   help="write a reverse phase-encoding b=0 (fmap/*_dir-PA_epi) per session")
    p.add_argument("--lesion-free-fraction", type=float, default=0.0,
                   help="fraction of participants without a lesion")
    p.add_argument("--manual-mask-fraction", type=float, default=0.0,
                   help="fraction of lesioned sessions with a manual label-lesion_roi mask")
    p.add_argument("--bold-null-fraction", type=float, default=0.0,
                   help="fraction of sessions with no task activation")
    p.add_argument("--dropout-fraction", type=float, default=0.0,
                   help="fraction of participants without a 6-month visit")
    p.add_argument("--effect-nihss", type=float, default=-1.5,
                   help="treated minus control 6-month NIHSS motor score (points)")
    p.add_argument("--storage", choices=("random", "RAS", "LAS", "LPS", "oblique"),
                   default="random",
                   help="how each session's images are stored: random (per session, RAS, LAS, "
                        "LPS or oblique up to 15 degrees, as scanners store them) or one for all")
    p.add_argument("--tissue-contrast", choices=("varied", "uniform"), default="varied",
                   help="T1w grey-matter/CSF contrast: varied (per subject: class means, regional "
                        "and fine GM variation, brighter deep GM and M1) or uniform (one "
                        "intensity per class, the original phantom)")

    p = command("inventory", _cmd_inventory, "discover sessions and write sessions.tsv")
    p.add_argument("--bids-dir", required=True, help="BIDS raw dataset (read only)")
    p.add_argument("--sessions", nargs="+", required=True, help="session labels in visit order")
    p.add_argument("--task", default="motor", help="task label of the motor fMRI run")
    p.add_argument("--participant-label", nargs="*", help="subjects to include (default: all)")
    p.add_argument("--exclude", nargs="*", help="sub-X_ses-Y sessions to skip")
    p.add_argument("--lesion-roi-dir", help="extra folder of manual lesion masks")
    p.add_argument("--reviewed-dir", default=schema_default("lesion", "reviewed_dir"),
                   help="folder of reviewed lesion masks saved from the QC review pages "
                        "(sub-X/ses-Y/anat/*_space-T1w_desc-reviewed_mask.nii.gz; lesion.reviewed_dir)")
    p.add_argument("--cache-dir", help="inventory cache (the workflow's <output_dir>/.resstore): "
                   "the dataset is indexed once per state and configuration")
    p.add_argument("--out", required=True, help="sessions.tsv")

    p = command("flair-qc", _cmd_flair_qc, "FLAIR image-quality metrics")
    p.add_argument("--flair", required=True, help="raw FLAIR (any storage orientation)")
    p.add_argument("--out-metrics", required=True, help="metrics JSON")

    p = command("dwi-qc", _cmd_dwi_qc, "DWI checks and image-quality metrics")
    for opt, help_ in (("--dwi", "raw DWI series (any storage orientation)"),
                       ("--bval", "its b-values (FSL text)"), ("--bvec", "its b-vectors (FSL text)"),
                       ("--out-metrics", "metrics JSON")):
        p.add_argument(opt, required=True, help=help_)

    p = command("session-features", _cmd_session_features, "one session's feature row")
    p.add_argument("--participant", required=True, help="sub-<label>")
    p.add_argument("--session", required=True, help="session label")
    p.add_argument("--metrics", nargs="*", help="stream=metrics.json pairs (status records allowed)")
    p.add_argument("--inventory", required=True, help="sessions.tsv")
    p.add_argument("--config-hash", default="", help="hash of the processing configuration")
    p.add_argument("--out", required=True, help="the session's feature row (JSON)")

    p = command("collect-features", _cmd_collect_features, "group features.tsv + features.json")
    p.add_argument("--rows", nargs="+", required=True, help="per-session feature rows (JSON)")
    p.add_argument("--ratings", nargs="*", help="qc/ratings.tsv (QC reviewer ratings), optional")
    p.add_argument("--out-tsv", required=True, help="features.tsv")
    p.add_argument("--out-json", required=True, help="features.json (data dictionary)")

    p = command("dataset-description", _cmd_dataset_description,
                "derivatives dataset_description.json and .bidsignore")
    p.add_argument("--bids-dir", required=True, help="the raw BIDS dataset (DatasetLinks.raw)")
    p.add_argument("--out-bidsignore", required=True,
                   help=".bidsignore of the derivatives folder (non-BIDS outputs)")
    p.add_argument("--out-readme", required=True, help="README of the derivatives folder")
    p.add_argument("--out", required=True, help="dataset_description.json")

    p = command("unlock", _cmd_unlock,
                "remove an output folder's run lock (only once the run holding it is gone)")
    p.add_argument("--output-dir", required=True, help="the workflow's output_dir")

    p = command("config-reference", _cmd_config_reference,
                "write the configuration reference (Markdown) from the schema")
    p.add_argument("--out", required=True, help="Markdown file (docs/configuration.md)")

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
    # a resstore process (argv from the command line) sends everything to its log
    _setup_logging(args.log, capture_output=argv is None)
    started = time.perf_counter()
    log.info("resstore %s (%s %s)", args.command, PIPELINE_NAME, __version__)
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
    log.info("resstore %s finished in %.1f s", args.command, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
