import pytest

from pipeline.features import dictionary
from pipeline.features.table import data_dictionary, feature_table, session_row
from pipeline.io import write_json


def test_undeclared_feature_is_an_error(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"brain_mask_volume_ml": 1200.0, "mystery_metric": 1})
    with pytest.raises(KeyError, match="mystery_metric"):
        session_row("sub-01", "baseline", {"anat": path})


def test_missing_streams_get_reasons(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"brain_mask_volume_ml": 1200.0})
    inv = {"status": "ok", "problems": "x/dwi.bval: has 32 b-values; DWI skipped"}
    row = session_row("sub-01", "baseline", {"anat": path}, inventory_row=inv, config_hash="abc")
    assert row["anat_status"] == "ok"
    assert row["dwi_status"].endswith("DWI skipped")
    assert row["bold_status"] == "no bold in this session"
    skipped = session_row("sub-01", "m06", {}, inventory_row={"status": "skipped",
                                                              "problems": "no T1w image"})
    assert skipped["flair_status"] == "session skipped: no T1w image"


def test_table_order_duplicates_and_dictionary(tmp_path):
    rows = [{"participant_id": "sub-02", "session": "baseline", "t1w_snr": 3.0},
            {"participant_id": "sub-01", "session": "baseline", "t1w_snr": 4.0}]
    table = feature_table(rows)
    assert table.participant_id.tolist() == ["sub-01", "sub-02"]
    assert list(table.columns[:2]) == ["participant_id", "session"]
    assert all(c in dictionary.FEATURES for c in table.columns)
    assert list(table.columns) == dictionary.columns()              # fixed schema
    assert table["dwi_b0_snr"].isna().all()                         # declared, produced by none
    with pytest.raises(KeyError, match="undeclared"):
        feature_table([{**rows[0], "made_up_metric": 1.0}])
    assert data_dictionary(table)["t1w_snr"]["Better"] == "higher"
    with pytest.raises(ValueError, match="duplicate subject x session"):
        feature_table(rows + rows[:1])


def test_every_feature_documented():
    for name, entry in dictionary.FEATURES.items():
        assert entry["Description"] and entry["Units"], name
        assert entry["Better"] in ("higher", "lower", "n/a")
