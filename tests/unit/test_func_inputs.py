"""Input checks of the fMRI stream: named errors for bad BOLD runs (pipeline.func.inputs, CLI)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.errors import PipelineInputError
from pipeline.func.glm import check_events
from pipeline.func.inputs import bold_metadata, load_bold_run

TR = 2.0


def _write_run(folder, *, shape=(7, 8, 9, 30), tr_header=TR, sidecar=None, events=True):
    func = folder / "sub-01" / "ses-a" / "func"
    func.mkdir(parents=True)
    (folder / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    rng = np.random.default_rng(0)
    img = nib.Nifti1Image(rng.uniform(100, 200, shape).astype(np.float32), np.diag([3, 3, 3, 1.0]))
    if len(shape) == 4:
        img.header.set_zooms((3, 3, 3, tr_header))
    img.header.set_xyzt_units("mm", "sec")
    bold = func / "sub-01_ses-a_task-motor_bold.nii.gz"
    nib.save(img, bold)
    (folder / "task-motor_bold.json").write_text(json.dumps({"TaskName": "motor",
                                                             "RepetitionTime": TR}))
    if sidecar is not None:
        (func / "sub-01_ses-a_task-motor_bold.json").write_text(json.dumps(sidecar))
    ev = func / "sub-01_ses-a_task-motor_events.tsv"
    if events:
        pd.DataFrame({"onset": [10.0, 30.0], "duration": [10.0, 10.0],
                      "trial_type": "move_affected_hand"}).to_csv(ev, sep="\t", index=False)
    return bold, ev


def test_metadata_inheritance_and_good_run(tmp_path):
    bold, events = _write_run(tmp_path, sidecar={"SliceTiming": list(np.linspace(0, 1.8, 9)),
                                                 "DummyScans": 3})
    meta = bold_metadata(bold)
    assert meta["RepetitionTime"] == TR and meta["DummyScans"] == 3  # top level + file level
    run = load_bold_run(bold, events)
    assert run.tr_s == TR and run.n_dummy == 3 and run.slice_timing_s.size == 9
    assert load_bold_run(bold, events, dummy_scans=0).n_dummy == 0  # config overrides


@pytest.mark.parametrize("case, message", [
    ("3d", "must be 4D"),
    ("tr", "disagrees with RepetitionTime"),
    ("events", "is missing"),
    ("slicetiming", "SliceTiming has 4 entries"),
    ("dummy", "dummy scans leave fewer than 10"),
])
def test_bad_runs_raise_named_errors(tmp_path, case, message):
    kwargs = {}
    if case == "3d":
        kwargs["shape"] = (7, 8, 9)
    elif case == "tr":
        kwargs["tr_header"] = 2.5
    elif case == "events":
        kwargs["events"] = False
    elif case == "slicetiming":
        kwargs["sidecar"] = {"SliceTiming": [0, 0.5, 1.0, 1.5]}
    elif case == "dummy":
        kwargs["sidecar"] = {"DummyScans": 25}
    bold, events = _write_run(tmp_path, **kwargs)
    with pytest.raises(PipelineInputError, match=message) as info:
        load_bold_run(bold, events)
    assert str(bold.name) in str(info.value) or str(events.name) in str(info.value)


def test_cli_exits_2_with_one_line(tmp_path, capsys):
    bold, events = _write_run(tmp_path, tr_header=3.0)
    out = tmp_path / "out"
    code = main(["func-preproc", "--bold", str(bold), "--events", str(events),
                 *[x for opt in ("bold", "boldref", "mask", "confounds", "metrics", "figure-motion",
                                 "figure-tsnr") for x in (f"--out-{opt}", str(out / opt))]])
    assert code == 2
    assert not out.exists()
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "disagrees with RepetitionTime" in errors[0]


def test_events_must_name_the_contrast_trial_types(tmp_path):
    events = pd.DataFrame({"onset": [0.0], "duration": [10.0], "trial_type": ["rest_only"]})
    with pytest.raises(PipelineInputError, match="move_affected_hand"):
        check_events(events, {"task": "move_affected_hand"}, run_s=100, path=tmp_path / "e.tsv")
    late = pd.DataFrame({"onset": [500.0], "duration": [10.0], "trial_type": ["move_affected_hand"]})
    with pytest.raises(PipelineInputError, match="no event starts within the run"):
        check_events(late, {"task": "move_affected_hand"}, run_s=100, path=tmp_path / "e.tsv")
