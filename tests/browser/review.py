"""Driving the lesion review page (pipeline/templates/review.js) from Playwright.

Strokes are real mouse clicks on the viewer's canvas: with a 1-voxel pen a click paints
(or erases) exactly the voxel under the pointer, and NiiVue tells where a voxel is on
the canvas (``vox2frac`` then ``frac2canvasPos``), so the test knows which voxels it
painted. Voxels are given on the page's (cropped) grid; ``to_page`` converts.
"""

from __future__ import annotations

import json
from pathlib import Path


def wait_ready(page, timeout_ms: int = 60000) -> dict:
    """Wait for both viewers; return the page's embedded data."""
    page.wait_for_function("window.resstoreReview && (window.resstoreReview.ready"
                           " || window.resstoreReview.error)", timeout=timeout_ms)
    error = page.evaluate("window.resstoreReview.error")
    assert error is None, error
    return json.loads(page.text_content("#page-data"))


def to_page(data: dict, voxel) -> list[int]:
    """A voxel of the full T1w grid on the page's cropped grid."""
    return [int(v) - s for v, s in zip(voxel, data["crop_start"], strict=True)]


def go_to(page, voxel) -> None:
    """Put the cross-hair (and so the axial slice shown) of every viewer on ``voxel``."""
    page.evaluate("""(vox) => window.resstoreReview.viewers.forEach(v => {
        v.nv.scene.crosshairPos = v.nv.vox2frac(vox); v.nv.drawScene(); })""", list(voxel))


def canvas_points(page, voxels, viewer: int = 0) -> list[tuple[float, float]]:
    """Page coordinates (CSS pixels) of the centres of ``voxels`` in the axial slice shown."""
    return [tuple(p) for p in page.evaluate("""([index, voxels]) => {
        const nv = window.resstoreReview.viewers[index].nv;
        const box = nv.canvas.getBoundingClientRect(), dpr = nv.uiData.dpr;
        return voxels.map(v => { const c = nv.frac2canvasPos(nv.vox2frac(v));
                                 return [box.left + c[0] / dpr, box.top + c[1] / dpr]; }); }""",
        [viewer, [list(v) for v in voxels]])]


def click_voxels(page, voxels, viewer: int = 0) -> None:
    """One click (one stroke) per voxel; all voxels on the axial slice shown."""
    for x, y in canvas_points(page, voxels, viewer):
        page.mouse.click(x, y)


def counts(page) -> dict:
    return page.evaluate("window.resstoreReview.counts()")


def bitmaps_agree(page) -> bool:
    """Every viewer shows the same mask as the page's state."""
    return page.evaluate("""() => { const r = window.resstoreReview;
        return r.viewers.every(v => v.nv.drawBitmap.every(
            (x, i) => (x ? 1 : 0) === r.state.current[i])); }""")


def save(page, folder) -> dict[str, Path]:
    """Click Save; return the two downloaded files (name -> path in ``folder``)."""
    downloads = []

    def collect(download):
        downloads.append(download)

    page.on("download", collect)
    page.click("#save")
    page.wait_for_function("document.querySelectorAll('#save-links a').length === 2")
    page.wait_for_timeout(300)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for download in downloads:
        out[download.suggested_filename] = folder / download.suggested_filename
        download.save_as(out[download.suggested_filename])
    page.remove_listener("download", collect)
    return out
