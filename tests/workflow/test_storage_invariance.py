"""One phantom session stored four ways (RAS, LAS, LPS, oblique 12 degrees) through the
whole pipeline: the same features in every stream.

Tolerances (stated as the issue asks): the manual-mask lesion volume is exact; RAS, LAS
and LPS hold the same voxels and the reader brings them to one canonical grid, so every
feature is identical (1e-9 relative).

The oblique storage keeps the voxel array and rotates the affine: the head sits 12
degrees from the template's pose in world space, as a tilted head in the scanner does.
Every feature that does not go through a template registration stays within 1 % or the
run-to-run floor (``pipeline.simulate.invariance.noise_floor``: the spread of the same
session when only ITK's multi-threaded registration noise differs: two runs with 2
threads per job, rounded up). Features that
go through the template registration (brain mask, priors, atlas regions, M1, CST) do
NOT meet that tolerance today: measured on the tiny trial, M1 thickness moves 0.12 to
0.13 mm, WM volume 2 %, CST load 7 to 16 %, FA in NAWM 0.015, the BOLD bootstrap
laterality index 0.5 (docs/orientation.md, "Known gap"). They are held to a gross bound
(GROSS below) that catches the class of bug that started the issue (arrays of two
orientations mixed: 2 mL against 872 mL), and every difference is printed and written to
``storage_oblique.json`` in the test's folder for the record.

Against the streams' own run-to-run noise: ``benchmarks/storage_noise.py`` runs the same
session stored RAS and oblique beside two rescans of it (same anatomy; new pose, noise,
bias and motion) and compares; see docs/orientation.md, "Known gap".
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from pipeline.features import dictionary
from pipeline.orientation import GRID_LOG_ENV
from pipeline.simulate.invariance import EXACT, REGISTRATION_DEPENDENT, noise_floor
from pipeline.simulate.invariance import INVARIANCE_STORAGES as STORAGES
from pipeline.simulate.storage import one_session_dataset
from tests.workflow.conftest import snakemake

# CI runs this (make test, not marked slow): four single-session subjects, one Snakemake run.
SOURCE = ("001", "baseline")  # 120 mL right lesion, manual mask, every modality


@pytest.fixture(scope="module")
def storage_run(tiny_trial, tmp_path_factory):
    work = tmp_path_factory.mktemp("storage")
    bids = work / "bids"
    sub, ses = SOURCE
    one_session_dataset({label: (tiny_trial / "bids", spec) for label, spec in STORAGES.items()},
                        sub, ses, bids)
    out = work / "out"
    grid_log = work / "grids.jsonl"  # every image read, by every job (pipeline.orientation)
    os.environ[GRID_LOG_ENV] = str(grid_log)
    try:
        snakemake(work / "run", {"bids_dir": str(bids), "output_dir": str(out), "sessions": [ses],
                                 "baseline_session": ses, **EXACT}, "--cores", "2")
    finally:
        del os.environ[GRID_LOG_ENV]
    table = pd.read_csv(out / "features.tsv", sep="\t", na_values=["n/a"], keep_default_na=False)
    truth = pd.read_csv(tiny_trial / "truth" / "sessions.tsv", sep="\t")
    truth = truth[(truth.participant_id == f"sub-{sub}") & (truth.session == ses)].iloc[0]
    reads = [json.loads(line) for line in grid_log.read_text().splitlines()]
    return table.set_index("participant_id"), truth, reads


def test_every_array_of_a_session_is_on_its_canonical_grid(storage_run):
    """The reader's log of every image each job read: all canonical, and every T1w-space
    image of a subject (raw T1w, FLAIR-free masks, derivatives) on one grid."""
    _, _, reads = storage_run
    assert len(reads) > 100
    assert {r["orientation"] for r in reads} == {"RAS"}
    assert {r["stored"] for r in reads} >= {"RAS", "LAS", "LPS"}
    for label in STORAGES:
        t1w_space = [r for r in reads if f"sub-{label}_" in r["path"] and "/anat/" in r["path"]
                     and "FLAIR" not in r["path"]]
        assert len(t1w_space) > 10
        grids = {(tuple(r["shape"][:3]), json.dumps(r["affine"])) for r in t1w_space}
        assert len(grids) == 1, f"sub-{label}: T1w-space images on {len(grids)} grids"


def _numeric_columns(table):
    return [c for c in table.columns if c in dictionary.FEATURES
            and dictionary.FEATURES[c]["Stream"] in ("anat", "lesion", "flair", "dwi", "bold")
            and pd.api.types.is_numeric_dtype(table[c]) and table[c].notna().any()]


def test_every_stream_ran_in_every_storage(storage_run):
    table, _, _ = storage_run
    for stream in ("anat", "lesion", "flair", "dwi", "bold"):
        assert (table[f"{stream}_status"] == "ok").all(), table[f"{stream}_status"]


def test_flipped_storages_give_identical_features(storage_run):
    table, truth, _ = storage_run
    columns = _numeric_columns(table)
    assert len(columns) > 60
    for label in ("las", "lps"):
        a, b = table.loc["sub-ras", columns].astype(float), table.loc[f"sub-{label}", columns].astype(float)
        both = a.notna() & b.notna()
        assert (a.notna() == b.notna()).all(), f"NA pattern differs for {label}"
        np.testing.assert_allclose(b[both], a[both], rtol=1e-9, atol=1e-9, err_msg=label)
    # a left-right flipped storage (LAS against RAS) keeps the side and every ipsi/contra feature
    assert table.loc["sub-las", "lesion_side_subject"] == table.loc["sub-ras", "lesion_side_subject"] \
        == truth["lesion_side"]


def test_manual_mask_volume_is_exact_in_every_storage(storage_run):
    table, truth, _ = storage_run
    voxel_ml = 2.5 ** 3 / 1000  # the tiny trial's T1w voxel
    for label in STORAGES:
        assert table.loc[f"sub-{label}", "lesion_source"] == "manual"
        # the voxel count is exact; the oblique header's float32 affine moves the voxel
        # volume in the 7th digit
        volume = table.loc[f"sub-{label}", "lesion_volume_ml"]
        assert round(volume / voxel_ml) == round(truth["lesion_volume_ml"] / voxel_ml)
        assert volume == pytest.approx(truth["lesion_volume_ml"], rel=1e-6)
        assert table.loc[f"sub-{label}", "lesion_side_subject"] == truth["lesion_side"]


# Features whose value goes through the template registration (REGISTRATION_DEPENDENT,
# pipeline.simulate.invariance): held to GROSS x their tolerance, not to the tolerance itself.
GROSS = 10.0


def test_oblique_storage_within_noise(storage_run, tmp_path_factory):
    table, _, _ = storage_run
    columns = _numeric_columns(table)
    ras, obl = table.loc["sub-ras", columns].astype(float), table.loc["sub-obl", columns].astype(float)
    failures, record = [], {}
    for column in columns:
        if np.isnan(ras[column]) and np.isnan(obl[column]):
            continue
        tolerance = max(0.01 * abs(ras[column]), noise_floor(column))
        dependent = column.startswith(REGISTRATION_DEPENDENT)
        record[column] = {"ras": ras[column], "oblique": obl[column], "tolerance": tolerance,
                          "registration_dependent": dependent,
                          "within_tolerance": bool(abs(obl[column] - ras[column]) <= tolerance)}
        bound = GROSS * tolerance if dependent else tolerance
        if not abs(obl[column] - ras[column]) <= bound:
            failures.append(f"{column}: RAS {ras[column]:.4g}, oblique {obl[column]:.4g} "
                            f"(bound {bound:.3g})")
    out = tmp_path_factory.mktemp("record") / "storage_oblique.json"
    out.write_text(json.dumps(record, indent=1, default=float))
    outside = [c for c, r in record.items() if not r["within_tolerance"]]
    print(f"oblique storage: {len(outside)} of {len(record)} features outside 1 %/floor "
          f"(registration-dependent): {', '.join(outside)}; record {out}")
    assert not failures, "\n".join(failures)
    # the known gap may only shrink: features outside the tolerance are registration-dependent
    assert all(record[c]["registration_dependent"] for c in outside)
