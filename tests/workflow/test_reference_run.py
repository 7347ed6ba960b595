"""The whole pipeline on the reference dataset (tiny phantom trial with planted faults):
every session gets a row, failures are stated where users read them, the features
agree with the phantom's truth, and the statistics run and state their exclusions.

One Snakemake run (the ``reference_run`` fixture, shared with the SLURM test); CI runs
this module (``make test``).
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.orientation import read_image
from pipeline.report.ratings import RATING_COLUMNS
from tests.conftest import dice
from tests.workflow.conftest import EXACT, FAULTS, snakemake


def _read(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"])


@pytest.fixture(scope="module")
def table(reference_run):
    return _read(reference_run / "features.tsv").set_index(["participant_id", "session"])


@pytest.fixture(scope="module")
def truth(tiny_trial):
    return _read(tiny_trial / "truth" / "sessions.tsv").set_index(["participant_id", "session"])


def test_every_session_has_a_row_and_each_failure_is_stated(table):
    assert len(table) == 4 and set(FAULTS) <= {(p[4:], s) for p, s in table.index}
    dwi = table.loc[("sub-001", "m06")]
    assert dwi["dwi_status"].startswith("failed: ") and "NaN or infinite voxels" in dwi["dwi_status"]
    assert "rule dwi_qc" in dwi["dwi_status"] and "logs/dwi_qc/" in dwi["dwi_status"]
    assert np.isnan(dwi["fa_cst_ipsilesional"]) and np.isnan(dwi["dwi_b0_snr"])
    # the session's other streams are filled
    assert dwi["anat_status"] == dwi["bold_status"] == dwi["lesion_status"] == "ok"
    assert dwi["thickness_mean_mm"] > 0 and np.isfinite(dwi["bold_laterality_index_roi"])
    bold = table.loc[("sub-002", "m06")]
    assert bold["bold_status"].startswith("failed: ") and "of 5 volumes" in bold["bold_status"]
    assert np.isnan(bold["bold_m1_peak_z_ipsilesional"]) and bold["fa_cst_ipsilesional"] > 0.3
    for key in ((p, s) for p, s in table.index if (p[4:], s) not in FAULTS):
        assert (table.loc[key, [f"{s}_status" for s in ("anat", "lesion", "dwi", "bold")]]
                == "ok").all(), key


def test_implausible_automatic_lesion_needs_review(table):
    row = table.loc[("sub-002", "baseline")]
    assert row["lesion_source"] == "automatic"
    assert row["lesion_status"].startswith("needs_review: ")
    assert row["lesion_plausibility"].startswith("implausible: ")
    assert "CSF" in row["lesion_plausibility"]


def test_every_qc_page_is_built_and_shows_the_failure(reference_run):
    pages = {p.name: p.read_text() for p in (reference_run / "reports").glob("sub-*.html")}
    assert len([n for n in pages if not n.endswith("_review.html")]) == 4
    page = pages["sub-001_ses-m06.html"]
    assert 'class="failed-step"' in page and "NaN or infinite voxels" in page
    assert "left out of the models" in page
    assert "needs_review" in pages["sub-002_ses-baseline.html"]
    assert (reference_run / "reports" / "index.html").exists()


def test_feature_table_against_truth(reference_run, table, truth):
    merged = table.join(truth, rsuffix="_truth", how="inner")
    assert len(merged) == 4
    manual = merged[merged.lesion_source == "manual"]
    assert len(manual) == 3  # the fault removed one manual mask
    np.testing.assert_allclose(manual.lesion_volume_ml, manual.lesion_volume_ml_truth, rtol=1e-6)
    assert (merged.lesion_side_subject == merged.lesion_side).all()
    rel = merged.brain_mask_volume_ml / merged.brain_mask_volume_ml_truth
    assert rel.between(0.88, 1.12).all(), rel.tolist()
    ok_dwi = merged[merged.dwi_status == "ok"]
    for side in ("ipsilesional", "contralesional"):
        error = (ok_dwi[f"fa_cst_{side}"] - ok_dwi[f"dwi_fa_cst_{side}"]).abs()
        assert (error < 0.1).all(), error.tolist()
    assert (merged.loc[merged.bold_status == "ok", "bold_n_volumes"] == 80).all()
    assert table.pipeline_version.nunique() == 1 and table.config_hash.nunique() == 1
    assert "arm" not in table.columns and "ADSC" not in table.to_string()
    dictionary = json.loads((reference_run / "features.json").read_text())
    assert set(dictionary) == set(table.reset_index().columns)
    description = json.loads((reference_run / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    sidecar = json.loads(next(reference_run.rglob("*desc-brain_mask.json")).read_text())
    assert sidecar["Sources"] and sidecar["GeneratedBy"]["Version"] and "Grid" in sidecar


def test_anatomy_against_truth(reference_run, tiny_trial):
    """At the tiny trial's 2.5 mm: brain, tissue and atlas regions against the truth labels
    (1 mm figures: benchmarks/anat_thinning.py and docs/anatomy.md)."""
    for sub, ses in (("001", "baseline"), ("002", "m06")):
        stem = f"sub-{sub}_ses-{ses}"
        out = reference_run / f"sub-{sub}" / f"ses-{ses}" / "anat"
        tdir = tiny_trial / "truth" / f"sub-{sub}" / f"ses-{ses}" / "anat"
        truth_dseg = np.asarray(read_image(tdir / f"{stem}_dseg.nii.gz").dataobj)
        dseg = np.asarray(read_image(out / f"{stem}_space-T1w_desc-tissue_dseg.nii.gz").dataobj)
        brain = np.asarray(read_image(out / f"{stem}_space-T1w_desc-brain_mask.nii.gz").dataobj)
        assert dice(brain, truth_dseg > 0) >= 0.93
        for label, floor in ((2, 0.75), (3, 0.80)):
            assert dice(dseg == label, truth_dseg == label) >= floor, (stem, label)
        atlas = np.asarray(read_image(out / f"{stem}_space-T1w_desc-atlas_dseg.nii.gz").dataobj)
        atlas_truth = np.asarray(read_image(tdir / f"{stem}_desc-atlas_dseg.nii.gz").dataobj)
        for label in (1, 2, 3, 4):  # CST and M1, left and right
            assert dice(atlas == label, atlas_truth == label) >= 0.65, (stem, label)


def test_bids_indexed_once(reference_run):
    log = (reference_run / ".resstore" / "index.log").read_text().splitlines()
    assert len(log) == 1, log


def test_review_accepts_the_flagged_lesion_and_stats_state_exclusions(reference_run, reference_bids,
                                                                      tiny_trial, tmp_path):
    """A reviewer accepts the flagged lesion (qc/ratings.tsv): it enters the models; the
    stats run at analysis time and list every session's left-out streams."""
    out = tmp_path / "out"
    shutil.copytree(reference_run, out)  # keeps modification times: nothing upstream reruns
    (out / ".resstore.lock").unlink(missing_ok=True)
    ratings = tmp_path / "ratings.tsv"
    pd.DataFrame([["sub-002", "baseline", "lesion", "pass", "Reviewer A", "checked the mask",
                   "2026-12-06T10:00:00Z"]], columns=RATING_COLUMNS).to_csv(ratings, sep="\t",
                                                                            index=False)
    config = {"bids_dir": str(reference_bids), "output_dir": str(out), **EXACT,
              "qc": {"ratings": str(ratings)},
              "stats": {"allocation": str(tiny_trial / "allocation.tsv")}}
    proc = snakemake(tmp_path / "work", config, "--cores", "2")
    ran = proc.stdout + proc.stderr
    assert "rule anat_" not in ran and "rule dwi_" not in ran   # only group steps reran
    features = _read(out / "features.tsv").set_index(["participant_id", "session"])
    assert features.loc[("sub-002", "baseline"), "lesion_status"] == "ok"
    assert features.loc[("sub-002", "baseline"), "lesion_rating"] == "pass"
    exclusions = _read(out / "stats" / "exclusions.tsv")
    text = exclusions.to_string()
    assert "sub-001" in text and "dwi" in text and "sub-002" in text and "bold" in text
    assert (out / "stats" / "results.tsv").exists() and (out / "stats" / "report.html").exists()


def test_nothing_to_do_on_a_second_run(reference_run, reference_bids, tmp_path):
    proc = snakemake(tmp_path / "work", {"bids_dir": str(reference_bids),
                                         "output_dir": str(reference_run), **EXACT}, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_derivatives_are_on_canonical_grids(reference_run):
    images = list(reference_run.rglob("*.nii.gz"))
    assert len(images) > 50
    assert all(nib.aff2axcodes(nib.load(p).affine) == ("R", "A", "S") for p in images
               if not p.read_bytes().startswith(b"RESSTORE-STATUS-RECORD"))
