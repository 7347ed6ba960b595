"""Cross-stream inputs of the fMRI stream made from a phantom's truth.

The lesion stream (LESION_MASK, LESION_SIDE) and the anatomy stream's atlas
(ATLAS_T1W), T1W_PREPROC and BRAIN_MASK are produced by other rules; these
helpers write stand-ins from ``truth/`` so the fMRI rules can be tested alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.paths import bids_path


def write_cross_stream_inputs(trial, out, subject: str, session: str, *, anat_too: bool = True):
    """Write ATLAS_T1W, LESION_MASK, LESION_SIDE (and T1W_PREPROC, BRAIN_MASK) for one session.

    Parameters
    ----------
    trial : path-like
        Output folder of ``simulate_trial`` (``bids/``, ``truth/``).
    out : path-like
        The pipeline's output_dir.
    subject, session : str
        Labels without ``sub-`` / ``ses-``.

    Returns
    -------
    dict of str to str
        Paths written.
    """
    trial, out = Path(trial), Path(out)
    stem = f"sub-{subject}_ses-{session}"
    tdir = trial / "truth" / f"sub-{subject}" / f"ses-{session}" / "anat"
    left = nib.load(tdir / f"{stem}_hemi-L_desc-m1_mask.nii.gz")
    right = nib.load(tdir / f"{stem}_hemi-R_desc-m1_mask.nii.gz")
    atlas = np.zeros(left.shape, dtype=np.uint8)
    atlas[np.asarray(left.dataobj) > 0] = 3  # pipeline.templates.ATLAS_REGION_LABELS
    atlas[np.asarray(right.dataobj) > 0] = 4
    paths = {}

    def save(img, key, **entities):
        # derivatives live on the canonical grid (pipeline.orientation); the phantom may
        # store its truth LAS, LPS or oblique
        path = Path(bids_path(out, subject=subject, session=session, **entities))
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.as_closest_canonical(img), path)
        paths[key] = str(path)

    save(nib.Nifti1Image(atlas, left.affine), "atlas", datatype="anat", suffix="dseg",
         extension=".nii.gz", space="T1w", desc="atlas")
    lesion = nib.load(tdir / f"{stem}_desc-lesion_mask.nii.gz")
    save(nib.Nifti1Image((np.asarray(lesion.dataobj) > 0).astype(np.uint8), lesion.affine), "lesion",
         datatype="anat", suffix="mask", extension=".nii.gz", space="T1w", desc="lesion")
    if anat_too:
        t1w = nib.load(trial / "bids" / f"sub-{subject}" / f"ses-{session}" / "anat" / f"{stem}_T1w.nii.gz")
        save(nib.Nifti1Image(np.asarray(t1w.dataobj, dtype=np.float32), t1w.affine), "t1w",
             datatype="anat", suffix="T1w", extension=".nii.gz", desc="preproc")
        brain = nib.load(tdir / f"{stem}_desc-brain_mask.nii.gz")
        save(nib.Nifti1Image((np.asarray(brain.dataobj) > 0).astype(np.uint8), brain.affine),
             "brain_mask", datatype="anat", suffix="mask", extension=".nii.gz", space="T1w",
             desc="brain")
    participants = pd.read_csv(trial / "bids" / "participants.tsv", sep="\t")
    side = participants.set_index("participant_id").loc[f"sub-{subject}", "lesion_side"]
    side_path = out / f"sub-{subject}" / f"sub-{subject}_desc-lesionside_metrics.json"
    side_path.parent.mkdir(parents=True, exist_ok=True)
    side_path.write_text(json.dumps({"lesion_side": side, "source": "phantom truth"}))
    paths["lesion_side"] = str(side_path)
    return paths
