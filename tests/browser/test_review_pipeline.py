"""The reviewer's edit loop end to end (issue 22), in real headless Chromium.

Snakemake runs one phantom session (T1w, FLAIR, manual mask; no DWI or BOLD); the test
opens the session's QC page, follows its link to the review page, paints N voxels and
erases M with the mouse, types the rater's name and saves with the page's own button;
the two downloaded files go into ``lesion.reviewed_dir`` and Snakemake runs again:
``lesion_volume_ml`` changes by exactly (N - M) voxels' volume, ``lesion_source`` is
``reviewed`` with the rater's name, and only the jobs downstream of the lesion mask (and
the inventory, which found a new file) run again.

Not marked slow: CI runs it (make test). Wall time on 2 shared cores: see the log line
``review loop timings`` (pytest -s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.lesion.measures import voxel_volume_ml
from pipeline.lesion.reviewed import reviewed_path
from pipeline.orientation import read_image
from pipeline.paths import bids_path
from tests.browser.review import click_voxels, counts, go_to, save, to_page, wait_ready
from tests.workflow.conftest import EXACT, snakemake, strip_modalities

pytestmark = pytest.mark.browser

SUB, SES = "001", "baseline"
RATER = "Dr Ada Reviewer"
N_PAINT, N_ERASE = 7, 3
# one session; a coarse Laplace thickness grid (the 2.5 mm T1w is not subdivided): the
# test is about the lesion mask, and thickness is the slowest job downstream of it
CONFIG = {"participant_label": [SUB], "sessions": [SES], "baseline_session": SES,
          "anat": {"thickness_grid_mm": 2.5}, **EXACT}


def _anat(out, suffix, ext=".nii.gz", **entities):
    return bids_path(out, datatype="anat", subject=SUB, session=SES, suffix=suffix,
                     extension=ext, **entities)


def _row(out) -> pd.Series:
    table = pd.read_csv(out / "features.tsv", sep="\t", keep_default_na=False, na_values=["n/a"],
                        float_precision="round_trip")     # the exact values written
    return table.set_index(["participant_id", "session"]).loc[(f"sub-{SUB}", SES)]


@pytest.fixture(scope="module")
def first_run(tiny_trial, tmp_path_factory):
    work = tmp_path_factory.mktemp("review-loop")
    bids = work / "bids"
    shutil.copytree(tiny_trial / "bids", bids)
    strip_modalities(bids)
    config = {"bids_dir": str(bids), "output_dir": str(work / "out"), **CONFIG}
    start = time.perf_counter()
    snakemake(work / "run", config, "--cores", "2")
    arms = set(pd.read_csv(tiny_trial / "allocation.tsv", sep="\t")["arm"].astype(str))
    return {"work": work, "out": work / "out", "config": config, "arms": arms,
            "first_s": time.perf_counter() - start}


def _pick(mask, brain, z, want, n):
    """``n`` voxels of the axial slice ``z`` with ``mask == want`` inside the brain, two
    voxels apart along x (one click each, never the same voxel twice)."""
    found = []
    for y in range(mask.shape[1]):
        row = [x for x in range(0, mask.shape[0], 2)
               if mask[x, y, z] == want and brain[x, y, z]
               and (want or not mask[max(x - 2, 0):x + 3, max(y - 2, 0):y + 3, z].any())]
        if len(row) >= n:
            found = [(x, y, z) for x in row[:n]]
            break
    assert len(found) == n, f"no row of {n} voxels with mask == {want} in slice {z}"
    return found


def test_reviewed_mask_round_trip(first_run, page, serve, tmp_path):
    out, timings = first_run["out"], {"first pipeline run": first_run["first_s"]}
    before = _row(out)
    assert before["lesion_source"] == "manual"           # the phantom has a manual mask
    mask0 = np.asarray(nib.load(_anat(out, "mask", space="T1w", desc="lesion")).dataobj) > 0
    brain = np.asarray(nib.load(_anat(out, "mask", desc="brain")).dataobj) > 0
    # the voxel volume as the lesion stream computes it (from the T1w it reads)
    voxel_ml = voxel_volume_ml(read_image(_anat(out, "T1w", desc="preproc")))
    assert before["lesion_volume_ml"] == mask0.sum() * voxel_ml

    # the session's QC page links to its review page
    start = time.perf_counter()
    page.goto(serve(out / "reports") + f"/sub-{SUB}_ses-{SES}.html")
    page.click("#review-link")
    page.wait_for_url(f"**/sub-{SUB}_ses-{SES}_review.html")
    data = wait_ready(page)
    timings["review page ready"] = time.perf_counter() - start
    assert page.evaluate("window.resstoreReview.viewers.length") == 2      # FLAIR and T1w
    assert data["started_from"]["Source"] == "manual"
    assert counts(page) == {"voxels": int(mask0.sum()), "painted": 0, "erased": 0}
    html = (out / "reports" / f"sub-{SUB}_ses-{SES}_review.html").read_text()
    text = re.sub(r'"[A-Za-z0-9+/=]{64,}"', '""', html)                  # images and hashes
    text = re.sub(r"<script>/\* NiiVue.*?</script>", "", text, flags=re.S).lower()  # viewer
    assert first_run["arms"] and not any(arm.lower() in text for arm in first_run["arms"])

    focus = [a + b for a, b in zip(data["crop_start"], data["focus_voxel"], strict=True)]
    z = focus[2]
    paint = _pick(mask0, brain, z, False, N_PAINT)
    erase = _pick(mask0, brain, z, True, N_ERASE)
    go_to(page, to_page(data, focus))
    click_voxels(page, [to_page(data, v) for v in paint], viewer=0)         # paint on the FLAIR
    page.click("#tool-erase")
    click_voxels(page, [to_page(data, v) for v in erase], viewer=1)         # erase on the T1w
    assert counts(page) == {"voxels": int(mask0.sum()) + N_PAINT - N_ERASE,
                            "painted": N_PAINT, "erased": N_ERASE}
    page.fill("#rater", RATER)
    saved = save(page, tmp_path / "downloads")
    page.screenshot(path=str(tmp_path / "review.png"))
    sidecar = json.loads(next(p for n, p in saved.items() if n.endswith(".json")).read_text())
    assert (sidecar["Rater"], sidecar["VoxelsPainted"], sidecar["VoxelsErased"]) == (
        RATER, N_PAINT, N_ERASE)

    # the data manager places both files in lesion.reviewed_dir; the pipeline runs again
    reviewed_dir = first_run["work"] / "reviewed"
    target = reviewed_path(reviewed_dir, SUB, SES)
    target.parent.mkdir(parents=True)
    for name, path in saved.items():
        shutil.copy(path, target.parent / name)
    assert target.exists() and target.with_name(target.name.replace(".nii.gz", ".json")).exists()
    t1w = _anat(out, "T1w", desc="preproc")
    t1w_stamp = os.stat(t1w).st_mtime_ns
    config = {**first_run["config"], "lesion": {"reviewed_dir": str(reviewed_dir)}}
    start = time.perf_counter()
    proc = snakemake(first_run["work"] / "run", config, "--cores", "2")
    timings["second pipeline run"] = time.perf_counter() - start
    rerun = set(_rules_run(proc.stdout + proc.stderr))
    assert {"lesion_segment", "features", "report_review"} <= rerun
    assert "anat_brainmask" not in rerun and "flair_qc" not in rerun    # upstream of the mask
    assert os.stat(t1w).st_mtime_ns == t1w_stamp                        # not rewritten

    after = _row(out)
    assert after["lesion_source"] == "reviewed"
    assert after["lesion_reviewed_by"] == RATER
    assert after["lesion_reviewed_from"] == "manual"         # the starting mask, verified
    assert after["lesion_reviewed_at"] == sidecar["Timestamp"]
    n1 = int(mask0.sum()) + N_PAINT - N_ERASE
    assert after["lesion_volume_ml"] == n1 * voxel_ml        # voxel count x voxel volume
    assert after["lesion_volume_ml"] - before["lesion_volume_ml"] == pytest.approx(
        (N_PAINT - N_ERASE) * voxel_ml, abs=1e-9)
    used = np.asarray(nib.load(_anat(out, "mask", space="T1w", desc="lesion")).dataobj) > 0
    expected = mask0.copy()
    expected[tuple(np.array(paint).T)] = True
    expected[tuple(np.array(erase).T)] = False
    np.testing.assert_array_equal(used, expected)
    # the rebuilt review page starts from the reviewed mask
    page.goto(serve(out / "reports") + f"/sub-{SUB}_ses-{SES}_review.html")
    assert wait_ready(page)["started_from"]["Source"] == "reviewed"
    print("review loop timings (s):", {k: round(v, 1) for k, v in timings.items()})


def _rules_run(log: str) -> list[str]:
    """Rules Snakemake ran (its ``rule <name>:`` / ``localrule <name>:`` job headers)."""
    return re.findall(r"^(?:local)?rule (\w+):", log, flags=re.M)
