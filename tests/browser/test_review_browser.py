"""The lesion review page in real headless Chromium, on a small synthetic session (no
pipeline run): both viewers load offline, paint / erase / undo / redo by mouse, the
rater is required, Save writes a mask and sidecar the pipeline accepts, layers toggle."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy.io import savemat

from pipeline.cli import main as resstore
from pipeline.lesion.reviewed import read_reviewed_mask, voxel_sha256
from tests.browser.review import (
    bitmaps_agree,
    click_voxels,
    counts,
    go_to,
    save,
    to_page,
    wait_ready,
)

pytestmark = pytest.mark.browser

SHAPE = (44, 50, 40)
AFFINE = np.array([[2.0, 0, 0, -44], [0, 2.0, 0, -50], [0, 0, 2.0, -40], [0, 0, 0, 1]])


def _session(folder):
    """T1w/FLAIR ellipsoid head, a lesion blob, a z-map blob, FA/V1 with an identity rigid."""
    folder.mkdir()
    grid = np.indices(SHAPE).astype(float)
    centre = (np.array(SHAPE) - 1)[:, None, None, None] / 2
    r = np.sqrt((((grid - centre) / (np.array(SHAPE)[:, None, None, None] * 0.42)) ** 2).sum(0))
    head = r < 1
    rng = np.random.default_rng(1)
    t1 = np.where(head, 80 + 20 * (r < 0.8), 0) + rng.normal(0, 2, SHAPE) * head
    lesion = np.zeros(SHAPE, np.uint8)
    lesion[12:17, 20:26, 18:22] = 1
    flair = np.where(head, 60, 0) + 60.0 * lesion
    z = np.zeros(SHAPE, np.float32)
    z[26:30, 24:28, 26:30] = 5.0
    fa = 0.6 * head.astype(np.float32)
    v1 = np.zeros((*SHAPE, 3), np.float32)
    v1[..., 2] = 1.0
    files = {}
    for name, data in (("t1w", t1), ("flair", flair), ("zmap", z), ("fa", fa), ("v1", v1)):
        files[name] = folder / f"sub-01_ses-baseline_{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(data, np.float32), AFFINE), files[name])
    files["mask"] = folder / "sub-01_ses-baseline_space-T1w_desc-lesion_mask.nii.gz"
    nib.save(nib.Nifti1Image(lesion, AFFINE), files["mask"])
    (folder / "sub-01_ses-baseline_space-T1w_desc-lesion_mask.json").write_text(
        json.dumps({"Parameters": {"source": "automatic"}}))
    files["xfm"] = folder / "xfm.mat"
    savemat(files["xfm"], {"AffineTransform_float_3_3": np.array(
        [[1.0], [0], [0], [0], [1], [0], [0], [0], [1], [0], [0], [0]]),
        "fixed": np.zeros((3, 1))})
    return files, lesion


@pytest.fixture(scope="module")
def review_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    files, lesion = _session(root / "session")
    reports = root / "reports"
    out = reports / "sub-01_ses-baseline_review.html"
    assert resstore(["report-review", "--participant", "sub-01", "--session", "baseline",
                     "--t1w", str(files["t1w"]), "--mask", str(files["mask"]),
                     "--flair", str(files["flair"]), "--zmap", str(files["zmap"]),
                     "--fa", str(files["fa"]), "--v1", str(files["v1"]),
                     "--xfm-dwi-to-t1w", str(files["xfm"]), "--out", str(out)]) == 0
    return out, files, lesion


def _open(page, serve, review_page):
    out, _, _ = review_page
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(serve(out.parent) + "/" + out.name)
    data = wait_ready(page)
    return data, requests


def test_page_loads_offline_with_both_viewers(page, serve, review_page):
    data, requests = _open(page, serve, review_page)
    assert requests == [page.url]                          # everything inlined: no other request
    assert page.evaluate("window.resstoreReview.viewers.length") == 2
    assert [v["key"] for v in data["volumes"]] == ["flair", "t1w", "zmap", "colourfa"]
    assert counts(page) == {"voxels": 120, "painted": 0, "erased": 0}
    assert page.text_content("#voxels") == "120" and page.text_content("#volume-ml") == "0.96"
    assert page.evaluate("window.niivue.version") == "0.69.0"
    csp = page.get_attribute("meta[http-equiv='Content-Security-Policy']", "content")
    assert "default-src 'none'" in csp and csp.count("'sha256-") == 3    # 2 scripts, 1 style
    for box in ("#show-zmap", "#show-colourfa", "#show-mask"):           # layers toggle cleanly
        page.click(box)
    for view in ("1", "2", "3", "0"):
        page.click(f"button.view[data-view='{view}']")
    assert "colour FA" in page.text_content("#caption-t1w")


def test_paint_erase_undo_redo_and_save(page, serve, review_page, tmp_path):
    data, _ = _open(page, serve, review_page)
    out, files, lesion = review_page
    z = 20
    go_to(page, to_page(data, (14, 22, z)))
    painted = [(x, 34, z) for x in (10, 13, 16, 19, 22)]           # outside the lesion
    click_voxels(page, [to_page(data, v) for v in painted], viewer=0)             # on the FLAIR
    assert counts(page) == {"voxels": 125, "painted": 5, "erased": 0}
    page.click("#tool-erase")
    erased = [(13, 21, z), (15, 24, z)]                            # inside the lesion
    click_voxels(page, [to_page(data, v) for v in erased], viewer=1)              # on the T1w
    assert counts(page) == {"voxels": 123, "painted": 5, "erased": 2}
    assert bitmaps_agree(page)                               # both viewers show every stroke
    page.click("#undo")
    assert counts(page)["erased"] == 1
    page.click("#redo")
    assert counts(page) == {"voxels": 123, "painted": 5, "erased": 2}
    assert page.text_content("#painted") == "+5" and page.text_content("#erased") == "\u22122"
    # no rater: nothing is saved, the page says why
    page.click("#save")
    assert "Type your name" in page.text_content("#save-status")
    assert page.locator("#save-links a").count() == 0
    page.fill("#rater", "Dr Reviewer")
    saved = save(page, tmp_path / "saved")
    mask_path = saved["sub-01_ses-baseline_space-T1w_desc-reviewed_mask.nii.gz"]
    sidecar = json.loads(saved["sub-01_ses-baseline_space-T1w_desc-reviewed_mask.json"].read_text())
    assert sidecar["Rater"] == "Dr Reviewer"
    assert (sidecar["VoxelsPainted"], sidecar["VoxelsErased"], sidecar["Voxels"]) == (5, 2, 123)
    assert sidecar["StartedFrom"]["VoxelSHA256"] == voxel_sha256(lesion)
    assert sidecar["StartedFrom"]["Source"] == "automatic"
    assert sidecar["Software"]["NiiVue"] == "0.69.0"
    # the pipeline's reader accepts it: same grid, hash of the saved voxels, start verified
    t1w = nib.load(files["t1w"])
    review = read_reviewed_mask(mask_path, t1w, versions={"automatic": lesion > 0})
    assert review.started_from_version == "automatic" and review.rater == "Dr Reviewer"
    expected = lesion > 0
    for v in painted:
        expected[v] = True
    for v in erased:
        expected[v] = False
    np.testing.assert_array_equal(review.mask, expected)
    img = nib.load(mask_path)
    assert img.get_data_dtype() == np.uint8 and np.allclose(img.affine, AFFINE)


def test_reset_and_pen_size(page, serve, review_page):
    data, _ = _open(page, serve, review_page)
    go_to(page, to_page(data, (14, 22, 20)))
    page.select_option("#pen-size", "3")
    click_voxels(page, [to_page(data, (30, 30, 20))])
    assert counts(page)["painted"] == 9                   # a 3 x 3 pen in the axial plane
    page.click("#reset")
    assert counts(page) == {"voxels": 120, "painted": 0, "erased": 0}
    page.click("#undo")                                   # the reset itself can be undone
    assert counts(page)["painted"] == 9
