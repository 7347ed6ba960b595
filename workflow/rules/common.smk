# Paths, input discovery and helpers shared by every rule.
# Every derivative path is built once here, from BIDS entities, by
# pipeline.paths.bids_path; producing and consuming rules use the same constant.

import hashlib

from pipeline import bids as bidsio
from pipeline.config import config_hash
from pipeline.paths import bids_path

OUT = config["output_dir"]
TASK = config["task"]
THREADS = config["resources"]["threads_per_job"]
CONFIG_HASH = config_hash(config)
CONTAINER = config["container"]

wildcard_constraints:
    subject="[a-zA-Z0-9]+",
    session="[a-zA-Z0-9]+",


def deriv(datatype, suffix, extension, **entities):
    """A per-session derivative path with {subject}/{session} wildcards."""
    return bids_path(OUT, datatype=datatype, subject="{subject}", session="{session}",
                     suffix=suffix, extension=extension, **entities)


def per_session(kind, rule_name):
    """Log or benchmark path of one rule for one session."""
    ext = ".log" if kind == "logs" else ".tsv"
    return f"{OUT}/{kind}/{rule_name}/sub-{{subject}}_ses-{{session}}{ext}"


# --- group outputs --------------------------------------------------------------
DATASET_DESCRIPTION = f"{OUT}/dataset_description.json"
SESSIONS_TSV = f"{OUT}/sessions.tsv"
FEATURES_TSV = f"{OUT}/features.tsv"
FEATURES_JSON = f"{OUT}/features.json"

# --- per-session derivatives ----------------------------------------------------
T1W_PREPROC = deriv("anat", "T1w", ".nii.gz", desc="preproc")
BRAIN_MASK = deriv("anat", "mask", ".nii.gz", desc="brain")
XFM_MNI_TO_T1W = deriv("anat", "xfm", ".mat", from_="MNI152NLin6Asym", to="T1w",
                       mode="image", desc="affine")
ANAT_METRICS = deriv("anat", "metrics", ".json", desc="brainmask")
ANAT_FIGURE = deriv("figures", "T1w", ".png", desc="brainmask")
FLAIR_METRICS = deriv("anat", "metrics", ".json", desc="flairqc")
DWI_METRICS = deriv("dwi", "metrics", ".json", desc="dwiqc")
BOLD_METRICS = deriv("func", "metrics", ".json", task=TASK, desc="boldqc")
SESSION_ROW = deriv(None, "features", ".json")

# --- input discovery (read only) ------------------------------------------------
INVENTORY = bidsio.discover(
    config["bids_dir"], sessions=config["sessions"], task=TASK,
    participant_label=config["participant_label"], exclude=config["exclude"],
    lesion_roi_dir=config["lesion_roi_dir"],
)
INVENTORY_DIGEST = hashlib.sha256(INVENTORY.to_csv().encode()).hexdigest()[:16]
_ROWS = {(r["participant_id"].removeprefix("sub-"), r["session"]): r
         for r in INVENTORY.to_dict("records")}
ALL_SESSIONS = list(_ROWS)


def sessions_with(modality):
    """(subject, session) pairs where ``modality`` will run."""
    return bidsio.runnable(INVENTORY, modality)


def raw(column):
    """Input function: the raw file of ``column`` for this session."""

    def lookup(wildcards):
        value = _ROWS[(wildcards.subject, wildcards.session)][column]
        if not value:
            raise ValueError(f"sub-{wildcards.subject} ses-{wildcards.session}: no {column}")
        return value

    return lookup


def row_value(column):
    """Params function: a value of the session's inventory row."""
    return lambda wildcards: _ROWS[(wildcards.subject, wildcards.session)][column]


def has(modality, wildcards):
    return (wildcards.subject, wildcards.session) in set(sessions_with(modality))


STREAM_OUTPUTS = {"anat": ("T1w", ANAT_METRICS), "flair": ("FLAIR", FLAIR_METRICS),
                  "dwi": ("dwi", DWI_METRICS), "bold": ("bold", BOLD_METRICS)}


def session_metrics(wildcards):
    """Input function: the metrics JSON of every stream that runs for this session."""
    return {stream: expand(path, **wildcards)[0]
            for stream, (modality, path) in STREAM_OUTPUTS.items() if has(modality, wildcards)}
