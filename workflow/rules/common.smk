# Paths, input discovery and helpers shared by every rule.
# Every derivative path is built once here, from BIDS entities, by
# pipeline.paths.bids_path; producing and consuming rules use the same constant.

import hashlib
import os

import numpy as np
import yaml

from pipeline import bids as bidsio
from pipeline.config import config_hash
from pipeline.paths import bids_path

OUT = config["output_dir"]
TASK = config["task"]
THREADS = config["resources"]["threads_per_job"]
CONFIG_HASH = config_hash(config)
CONTAINER = config["container"]
# Stream rules record a named input error for the session instead of failing the job
# (pipeline/status.py): the session's other streams, its feature row, its QC page and
# the statistics are still built. Unexpected errors still fail the job.
ON_ERROR = "--on-error record"


wildcard_constraints:
    subject="[a-zA-Z0-9]+",
    session="[a-zA-Z0-9]+",


def deriv(datatype, suffix, extension, **entities):
    """A per-session derivative path with {subject}/{session} wildcards."""
    return bids_path(
        OUT,
        datatype=datatype,
        subject="{subject}",
        session="{session}",
        suffix=suffix,
        extension=extension,
        **entities,
    )


def per_session(kind, rule_name):
    """Log or benchmark path of one rule for one session."""
    ext = ".log" if kind == "logs" else ".tsv"
    return f"{OUT}/{kind}/{rule_name}/sub-{{subject}}_ses-{{session}}{ext}"


# --- group outputs --------------------------------------------------------------
DATASET_DESCRIPTION = f"{OUT}/dataset_description.json"
SESSIONS_TSV = f"{OUT}/sessions.tsv"
FEATURES_TSV = f"{OUT}/features.tsv"
FEATURES_JSON = f"{OUT}/features.json"

# Targets of `rule all`; stages append theirs (e.g. reports, stats when an
# allocation key is given).
FINAL_TARGETS = [DATASET_DESCRIPTION, SESSIONS_TSV, FEATURES_TSV, FEATURES_JSON]

# --- cross-stream contracts (producer -> consumers) -----------------------------
# Every file one stream hands another is defined here, once, by the path helper;
# no rule file reads another stream's private names. All images are on the
# canonical (closest RAS+) grid of their source (pipeline/orientation.py).
#
# anat_affine.smk -> lesion, anat_syn: N4 T1w, affine template brain mask and transform.
T1W_PREPROC = deriv("anat", "T1w", ".nii.gz", desc="preproc")
BRAIN_MASK_AFFINE = deriv("anat", "mask", ".nii.gz", desc="brain")
XFM_MNI_TO_T1W_AFFINE = deriv(
    "anat", "xfm", ".mat", from_="MNI152NLin6Asym", to="T1w", mode="image", desc="affine"
)
# lesion.smk -> anat_syn (cost-function masking, lesion class), lesion_load, dwi, func.
LESION_MASK = deriv("anat", "mask", ".nii.gz", space="T1w", desc="lesion")
LESION_METRICS = deriv("anat", "metrics", ".json", desc="lesion")
# lesion.smk -> qc (review page): the N4 FLAIR rigidly registered to the T1w, on the T1w
# grid (a status record saying so where the session has no FLAIR).
LESION_FLAIR_T1W = deriv("anat", "FLAIR", ".nii.gz", space="T1w", desc="preproc")
# lesion.smk, once per subject from the baseline lesion (participants.tsv lesion_side
# overrides); read with pipeline.side.read_lesion_side by every stream.
LESION_SIDE = bids_path(
    OUT, datatype=None, subject="{subject}", suffix="metrics", extension=".json", desc="lesionside"
)
# anat_syn.smk -> lesion_load, dwi, func: the lesion-masked SyN between T1w and
# MNI152NLin6Asym, the atlas regions and tissue classes it brings, and the brain
# mask through it (the one brain mask downstream of the SyN).
XFM_MNI_TO_T1W_SYN = deriv("anat", "xfm", ".h5", from_="MNI152NLin6Asym", to="T1w", mode="image")
XFM_T1W_TO_MNI_SYN = deriv("anat", "xfm", ".h5", from_="T1w", to="MNI152NLin6Asym", mode="image")
# labels: pipeline.templates.ATLAS_REGION_LABELS; tissue: 1 CSF, 2 GM, 3 WM, 4 lesion
ATLAS_T1W = deriv("anat", "dseg", ".nii.gz", space="T1w", desc="atlas")
TISSUE_DSEG = deriv("anat", "dseg", ".nii.gz", space="T1w", desc="tissue")
BRAIN_MASK = deriv("anat", "mask", ".nii.gz", space="T1w", desc="brain")

# --- per-session derivatives ----------------------------------------------------
# Each stream's .smk defines its own path constants with deriv() and registers
# its metrics JSON (-> feature row) and reportlets (-> QC report) below.
SESSION_ROW = deriv(None, "features", ".json")

SESSION_METRICS = []  # (stream, modality, path): the feature row reads these
REPORTLETS = []  # dicts: modality, step, title, figure, metrics, caption, methods
REVIEW_LAYERS = []  # dicts: modality, files, options: extra layers of the lesion review page


def register_metrics(stream, modality, path):
    """Declare that ``path`` (a metrics JSON of ``stream``) feeds the feature row
    of every session where ``modality`` runs."""
    SESSION_METRICS.append((stream, modality, path))


def register_reportlet(*, modality, step, title, figure, metrics=None, caption="", methods=""):
    """Declare a QC reportlet (figure + optional metrics JSON) of one step."""
    REPORTLETS.append(
        dict(
            modality=modality,
            step=step,
            title=title,
            figure=figure,
            metrics=metrics,
            caption=caption,
            methods=methods,
        )
    )


def register_review_layer(*, modality, files, options=""):
    """Declare images the lesion review page shows where ``modality`` runs: ``files`` maps a
    ``resstore report-review`` option (``zmap`` for ``--zmap``) to a path pattern."""
    REVIEW_LAYERS.append(dict(modality=modality, files=files, options=options))


# --- input discovery (read only) ------------------------------------------------
# computed once per dataset state and configuration, read back by every later parse
# (every SLURM job parses this file): pipeline.bids.cached_inventory
INVENTORY = bidsio.cached_inventory(
    config["bids_dir"],
    os.path.join(OUT, ".resstore"),
    sessions=config["sessions"],
    task=TASK,
    participant_label=config["participant_label"],
    exclude=config["exclude"],
    lesion_roi_dir=config["lesion_roi_dir"],
    reviewed_dir=config["lesion"]["reviewed_dir"],
)
INVENTORY_DIGEST = hashlib.sha256(INVENTORY.to_csv().encode()).hexdigest()[:16]
_ROWS = {
    (r["participant_id"].removeprefix("sub-"), r["session"]): r
    for r in INVENTORY.to_dict("records")
}
ALL_SESSIONS = list(_ROWS)


def sessions_with(modality):
    """(subject, session) pairs where ``modality`` will run ("lesion": every session
    with a T1w, whose lesion comes from a FLAIR, a manual mask or neither)."""
    return bidsio.runnable(INVENTORY, "T1w" if modality == "lesion" else modality)


def raw(column):
    """Input function: the raw file of ``column`` for this session."""

    def lookup(wildcards):
        value = _ROWS[(wildcards.subject, wildcards.session)][column]
        if not value:
            raise ValueError(f"sub-{wildcards.subject} ses-{wildcards.session}: no {column}")
        return value

    return lookup


def optional_raw(column):
    """Input function: the raw file of ``column`` for this session, or no input (an
    optional file, e.g. the reverse phase-encoding b=0 of ``dwi_reverse``)."""

    def lookup(wildcards):
        value = _ROWS[(wildcards.subject, wildcards.session)][column]
        return value if isinstance(value, str) and value else []

    return lookup


def row_value(column):
    """Params function: a value of the session's inventory row."""
    return lambda wildcards: _ROWS[(wildcards.subject, wildcards.session)][column]


# --- resources that follow the input ----------------------------------------------
# workflow/resources.yaml: coefficients measured by benchmarks/resources.py;
# the arithmetic is pipeline.resources (the benchmark checks it against the peaks)
from pipeline import resources as _resources

RESOURCE_MODEL = _resources.load_model(os.path.join(workflow.basedir, "workflow", "resources.yaml"))


def _session_mvoxels(model, wildcards):
    image = model["image"]
    cap = config["anat"]["max_voxel_mm"] if image == "t1w" else None
    return _resources.mvoxels(_ROWS[(wildcards.subject, wildcards.session)][image], cap)


def mem_mb_of(rule_name):
    """``mem_mb`` callable: the model's a + b x Mvoxels of the session's input, x attempt."""
    model = RESOURCE_MODEL[rule_name]

    def resource(wildcards, attempt):
        return _resources.declared(model, _session_mvoxels(model, wildcards), attempt)[0]

    return resource


def runtime_of(rule_name):
    """``runtime`` callable (minutes): a + b x Mvoxels, x attempt."""
    model = RESOURCE_MODEL[rule_name]

    def resource(wildcards, attempt):
        return _resources.declared(model, _session_mvoxels(model, wildcards), attempt)[1]

    return resource


def option_list(flag, values):
    """``--flag v1 v2`` for a list config value, "" for null or empty."""
    return f"{flag} " + " ".join(str(v) for v in values) if values else ""


def has(modality, wildcards):
    return (wildcards.subject, wildcards.session) in set(sessions_with(modality))


def session_metric_files(wildcards):
    """(stream, path) of every registered metrics JSON that runs for this session."""
    return [
        (stream, expand(path, **wildcards)[0])
        for stream, modality, path in SESSION_METRICS
        if has(modality, wildcards)
    ]


def session_review_layers(wildcards):
    """Registered review-page layers whose modality runs for this session:
    (option -> resolved path, extra command-line options)."""
    files, options = {}, []
    for layer in REVIEW_LAYERS:
        if has(layer["modality"], wildcards):
            files.update({k: expand(p, **wildcards)[0] for k, p in layer["files"].items()})
            options.append(layer["options"])
    return files, " ".join(o for o in options if o)


def session_reportlets(wildcards):
    """Registered reportlets whose modality runs for this session, paths resolved."""
    return [
        dict(
            r,
            figure=expand(r["figure"], **wildcards)[0],
            metrics=expand(r["metrics"], **wildcards)[0] if r["metrics"] else None,
        )
        for r in REPORTLETS
        if has(r["modality"], wildcards)
    ]
