"""Data dictionary of every feature column (``features.json``).

Each stream declares its columns in ``dictionaries/<stream>.yaml``: units,
description, which direction is better (``higher``, ``lower`` or ``n/a``)
and the stream that makes it. A column a stream writes but that is not
declared is an error (tested).
"""

from __future__ import annotations

from importlib import resources

import yaml

# stream -> the item a QC reviewer rates that governs its features: a BIDS modality, or
# the lesion mask itself (made from a FLAIR, a manual mask or both; reviewed on its own)
STREAM_MODALITY = {"anat": "T1w", "flair": "FLAIR", "lesion": "lesion", "dwi": "dwi",
                   "bold": "bold"}
# what the QC pages show and a reviewer rates, in page order (one definition)
RATED_ITEMS = ("T1w", "lesion", "FLAIR", "dwi", "bold")
STREAMS = tuple(STREAM_MODALITY)
IDENTIFIERS = ("participant_id", "session")
_ORDER = ("core", "anat", "lesion", "flair", "dwi", "bold")


def _load() -> dict[str, dict]:
    folder = resources.files("pipeline.features").joinpath("dictionaries")
    names = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                   if p.name.endswith(".yaml"))
    names = [n for n in _ORDER if n in names] + [n for n in names if n not in _ORDER]
    features: dict[str, dict] = {}
    for name in names:
        entries = yaml.safe_load(folder.joinpath(f"{name}.yaml").read_text()) or {}
        for key, entry in entries.items():
            if key in features:
                raise ValueError(f"dictionaries/{name}.yaml: {key} declared twice")
            better = entry.get("better", "n/a")
            if better not in ("higher", "lower", "n/a"):
                raise ValueError(f"dictionaries/{name}.yaml: {key}: better must be higher/lower/n/a")
            features[key] = {"Description": entry["description"], "Units": entry["units"],
                             "Better": better, "Stream": entry["stream"],
                             **({"Levels": entry["levels"]} if "levels" in entry else {})}
    for stream in STREAMS:
        features[f"{stream}_status"] = {
            "Description": f"'ok' if the {stream} stream produced features for this session, "
                           "else the reason its columns are NA",
            "Units": "n/a", "Better": "n/a", "Stream": "provenance"}
    return features


FEATURES: dict[str, dict] = _load()


def columns() -> list[str]:
    """Feature table columns in dictionary order."""
    return list(FEATURES)
