"""One helper builds every derivative path from BIDS entities.

Both the rule that writes a file and the rule that reads it use a constant
built here (see ``workflow/rules/common.smk``), so a path is written once.
Values may be Snakemake wildcards such as ``"{subject}"``.
"""

from __future__ import annotations

from pathlib import Path

# BIDS entity order (BIDS 1.9 appendix "Entity table"), with the keys we use.
ENTITY_ORDER = (
    ("subject", "sub"), ("session", "ses"), ("task", "task"), ("acquisition", "acq"),
    ("run", "run"), ("from_", "from"), ("to", "to"), ("mode", "mode"), ("hemi", "hemi"),
    ("space", "space"), ("res", "res"), ("label", "label"), ("desc", "desc"),
)


def bids_name(*, suffix: str, extension: str, **entities) -> str:
    """File name ``sub-X_ses-Y_..._<suffix><extension>`` from entities.

    Parameters
    ----------
    suffix : str
        BIDS suffix (``T1w``, ``mask``, ``dseg``, ``xfm``, ``metrics``...).
    extension : str
        With the dot: ``.nii.gz``, ``.json``, ``.tsv``, ``.png``.
    **entities
        Keys of :data:`ENTITY_ORDER` (``from_`` for ``from``); None is skipped.
    """
    known = {key for key, _ in ENTITY_ORDER}
    unknown = set(entities) - known
    if unknown:
        raise KeyError(f"unknown BIDS entities: {sorted(unknown)}")
    parts = [f"{short}-{entities[key]}" for key, short in ENTITY_ORDER
             if entities.get(key) is not None]
    return "_".join([*parts, suffix]) + extension


def bids_path(root, *, datatype: str | None, suffix: str, extension: str, **entities) -> str:
    """``root/sub-X[/ses-Y][/datatype]/<bids_name>`` as a string."""
    folder = Path(root)
    if entities.get("subject") is not None:
        folder = folder / f"sub-{entities['subject']}"
    if entities.get("session") is not None:
        folder = folder / f"ses-{entities['session']}"
    if datatype:
        folder = folder / datatype
    return str(folder / bids_name(suffix=suffix, extension=extension, **entities))
