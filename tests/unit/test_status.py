"""Status records: a named error leaves a record per output, downstream commands pass it on."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from pipeline import status
from pipeline.cli import main as resstore
from pipeline.features.table import session_row


def _dwi(tmp_path, *, nan=False):
    rng = np.random.default_rng(0)
    data = rng.random((6, 7, 5, 8)).astype(np.float32) * 100 + 50
    if nan:
        data[2, 2, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "x_dwi.nii.gz")
    np.savetxt(tmp_path / "x_dwi.bval", [[0, 1000, 1000, 1000, 1000, 1000, 1000, 1000]], fmt="%g")
    vec = rng.normal(size=(3, 8))
    vec /= np.linalg.norm(vec, axis=0)
    vec[:, 0] = 0
    np.savetxt(tmp_path / "x_dwi.bvec", vec, fmt="%.6f")
    return [str(tmp_path / f"x_dwi.{e}") for e in ("nii.gz", "bval", "bvec")]


def test_named_error_writes_records_or_fails_as_asked(tmp_path):
    dwi, bval, bvec = _dwi(tmp_path, nan=True)
    out = tmp_path / "out" / "logs" / "dwi_qc" / "sub-1_ses-a.log"
    metrics = tmp_path / "out" / "m.json"
    args = ["dwi-qc", "--dwi", dwi, "--bval", bval, "--bvec", bvec, "--out-metrics", str(metrics),
            "--log", str(out)]
    assert resstore(args) == 2 and not metrics.exists()           # by hand: exit status 2
    assert resstore([*args, "--on-error", "record"]) == 0         # in the workflow: a record
    record = status.read_record(metrics)
    assert record["status"] == "failed" and "NaN" in record["error"]
    assert record["rule"] == "dwi_qc" and record["log"] == "logs/dwi_qc/sub-1_ses-a.log"
    # a command given a record as input does not run and passes the failure on
    figure = tmp_path / "out" / "f.png"
    assert resstore(["flair-qc", "--flair", str(metrics), "--out-metrics", str(figure),
                     "--on-error", "record"]) == 0
    passed = status.read_record(figure)
    assert passed["status"] == "failed upstream" and passed["upstream_rule"] == "dwi_qc"
    assert "NaN" in status.describe(passed)


def test_feature_row_states_the_failure_and_keeps_valid_steps(tmp_path):
    ok = tmp_path / "qc.json"
    ok.write_text(json.dumps({"dwi_b0_snr": 12.5}))
    failed = tmp_path / "preproc.json"
    status.write_records([failed], {"status": "failed", "error": "x.nii.gz: contains 8 NaN",
                                    "rule": "dwi_preproc", "log": "logs/dwi_preproc/a.log"})
    lesion = tmp_path / "lesion.json"
    lesion.write_text(json.dumps({"lesion_volume_ml": None,
                                  "lesion_status": "no FLAIR and no manual lesion mask"}))
    row = session_row("sub-1", "a", {"dwi": [str(ok), str(failed)], "lesion": str(lesion)})
    assert row["dwi_status"].startswith("failed: x.nii.gz: contains 8 NaN (rule dwi_preproc")
    assert row["dwi_b0_snr"] == 12.5 and "fa_cst_ipsilesional" not in row
    assert row["lesion_status"] == "no FLAIR and no manual lesion mask"
    assert row["anat_status"] == "no T1w in this session"
