"""Real Snakemake run of the DWI stream on the tiny phantom trial.

The cross-stream inputs of ``dwi_regions`` (lesion mask and side, T1w-space atlas
and tissue classes) are taken from the phantom's truth and placed where the
lesion and anatomy streams write them; ``--allowed-rules`` keeps Snakemake from
rebuilding them, so this test exercises the DWI rules alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.features import dictionary
from pipeline.paths import bids_path
from tests.workflow.conftest import snakemake

SESSIONS = [("001", "baseline"), ("001", "m06"), ("002", "baseline"), ("002", "m06")]
FAST = {"gibbs": False, "motion_shrink_factors": [2, 1], "motion_iterations": [40, 20]}


def _place_truth_inputs(trial, out):
    """Truth masks -> LESION_MASK, ATLAS_T1W, TISSUE_DSEG, LESION_SIDE paths."""
    truth = pd.read_csv(trial / "truth" / "sessions.tsv", sep="\t")
    for sub, ses in SESSIONS:
        anat = trial / "truth" / f"sub-{sub}" / f"ses-{ses}" / "anat" / f"sub-{sub}_ses-{ses}"
        def path(suffix, sub=sub, ses=ses, **e):
            return bids_path(out, datatype="anat", subject=sub, session=ses, suffix=suffix,
                             extension=".nii.gz", **e)

        lesion = nib.load(f"{anat}_desc-lesion_mask.nii.gz")
        atlas = np.zeros(lesion.shape, np.uint8)
        for value, name in ((1, "hemi-L_desc-cst"), (2, "hemi-R_desc-cst"), (3, "hemi-L_desc-m1"),
                            (4, "hemi-R_desc-m1")):
            region = np.asarray(nib.load(f"{anat}_{name}_mask.nii.gz").dataobj) > 0
            atlas[region & (atlas == 0)] = value
        targets = {path("mask", space="T1w", desc="lesion"): lesion,
                   path("dseg", space="T1w", desc="atlas"): nib.Nifti1Image(atlas, lesion.affine),
                   path("dseg", space="T1w", desc="tissue"): nib.load(f"{anat}_dseg.nii.gz")}
        for target, img in targets.items():
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.as_closest_canonical(img), target)  # derivatives are canonical
        side = truth.loc[truth.participant_id == f"sub-{sub}", "lesion_side"].iloc[0]
        (out / f"sub-{sub}" / f"sub-{sub}_desc-lesionside_metrics.json").write_text(
            json.dumps({"lesion_side": side, "source": "phantom truth"}))
    return truth.set_index(["participant_id", "session"])


@pytest.mark.slow
def test_dwi_stream_end_to_end_and_a_broken_series(tiny_trial, bids_copy, tmp_path):
    bad = bids_copy / "sub-002" / "ses-m06" / "dwi" / "sub-002_ses-m06_dwi.nii.gz"
    img = nib.load(bad)
    data = img.get_fdata(dtype=np.float32)
    data[5:7, 5:7, 5:7, 3] = np.nan                       # passes discovery, fails in the stream
    nib.save(nib.Nifti1Image(data, img.affine), bad)
    out = tmp_path / "out"
    truth = _place_truth_inputs(tiny_trial, out)
    targets = [bids_path(out, datatype="dwi", subject=s, session=v, suffix="metrics",
                         extension=".json", desc=d)
               for s, v in SESSIONS for d in ("dwiregions", "dwipreproc", "dwiqc")]
    proc = snakemake(tmp_path / "work", {"bids_dir": str(bids_copy), "output_dir": str(out),
                                         "dwi": FAST},
                     "--cores", "2", "--keep-going", "--allowed-rules", "inventory",
                     "anat_brainmask", "dwi_qc", "dwi_preproc", "dwi_regions", "--", *targets,
                     check=False)
    assert proc.returncode != 0                           # the NaN session failed ...
    log = (out / "logs" / "dwi_preproc" / "sub-002_ses-m06.log").read_text()
    assert "sub-002_ses-m06_dwi.nii.gz: contains 8 NaN or infinite voxels" in log
    assert not (out / "sub-002" / "ses-m06" / "dwi").exists() or not any(
        (out / "sub-002" / "ses-m06" / "dwi").glob("*_metrics.json"))
    for sub, ses in SESSIONS[:3]:                         # ... and every other one finished
        metrics = {}
        for desc in ("dwipreproc", "dwiregions"):
            path = out / f"sub-{sub}" / f"ses-{ses}" / "dwi" / f"sub-{sub}_ses-{ses}_desc-{desc}_metrics.json"
            metrics.update(json.loads(path.read_text()))
        assert set(metrics) <= set(dictionary.FEATURES)
        row = truth.loc[(f"sub-{sub}", ses)]
        for side in ("ipsilesional", "contralesional"):
            assert abs(metrics[f"fa_cst_{side}"] - row[f"dwi_fa_cst_{side}"]) < 0.1
        assert metrics["dwi_t1w_brain_dice"] > 0.8
        for fig in ("colourfa", "motion", "residual", "regions"):
            assert (out / f"sub-{sub}" / f"ses-{ses}" / "figures" /
                    f"sub-{sub}_ses-{ses}_desc-{fig}_dwi.png").stat().st_size > 5000
        bvec = np.loadtxt(out / f"sub-{sub}" / f"ses-{ses}" / "dwi" /
                          f"sub-{sub}_ses-{ses}_space-dwi_desc-preproc_dwi.bvec")
        assert bvec.shape[0] == 3
    shutil.rmtree(tmp_path / "work", ignore_errors=True)
