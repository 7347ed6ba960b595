"""Lesion review page benchmark: page size (per layer), build time and the time until both
NiiVue viewers are ready in headless Chromium.

    python benchmarks/review_page.py --output-dir OUT --participant sub-001 --session baseline
    python benchmarks/review_page.py --phantom-mm 1 --json review_1mm.json

``--output-dir``: a pipeline output folder (every layer the session has: FLAIR, z-map,
colour FA). ``--phantom-mm``: one phantom session simulated at that voxel size (T1w,
FLAIR, lesion; a z-map blob over M1 and a colour FA from a smooth direction field stand
in for the func and dwi streams), without running the pipeline.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _pipeline_inputs(out: Path, participant: str, session: str) -> list[str]:
    anat = out / participant / f"ses-{session}" / "anat"
    stem = f"{participant}_ses-{session}"
    args = ["--t1w", str(anat / f"{stem}_desc-preproc_T1w.nii.gz"),
            "--mask", str(anat / f"{stem}_space-T1w_desc-lesion_mask.nii.gz"),
            "--brain-mask", str(anat / f"{stem}_desc-brain_mask.nii.gz")]
    optional = {"--flair": anat / f"{stem}_space-T1w_desc-preproc_FLAIR.nii.gz"}
    func = out / participant / f"ses-{session}" / "func"
    optional["--zmap"] = next(iter(sorted(func.glob(f"{stem}_task-*_space-T1w_desc-*_zmap.nii.gz"))),
                              func / "none")
    dwi = out / participant / f"ses-{session}" / "dwi"
    optional.update({"--fa": dwi / f"{stem}_space-dwi_desc-fa_dwimap.nii.gz",
                     "--v1": dwi / f"{stem}_space-dwi_desc-v1_dwimap.nii.gz",
                     "--xfm-dwi-to-t1w": dwi / f"{stem}_from-dwi_to-T1w_mode-image_xfm.mat"})
    for flag, path in optional.items():
        if path.exists():
            args += [flag, str(path)]
    return args


def _phantom_inputs(folder: Path, voxel_mm: float) -> list[str]:
    from scipy import ndimage
    from scipy.io import savemat

    from pipeline.simulate.anatomy import plan_lesion, simulate_structural
    from pipeline.simulate.layers import template_layers
    from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix

    rng = np.random.default_rng(7)
    layers = template_layers()
    plan = plan_lesion(rng, layers, side="left", volume_ml=40.0)
    sim = simulate_structural(rng=rng, layers=layers, session_map=SessionMap(
        random_subject_warp(rng), rigid_matrix(rng.normal(0, 3, 3), rng.normal(0, 3, 3))),
        lesion_plan=plan, lesion_stage="subacute", voxel_mm=voxel_mm)
    files = {"t1w": sim.t1w, "flair": sim.flair, "mask": sim.lesion,
             "brain-mask": sim.brain_mask}
    shape, affine = sim.t1w.shape, sim.t1w.affine
    z = np.zeros(shape, np.float32)                  # an activation blob, 15 mm across
    centre = np.array(shape) * [0.35, 0.5, 0.75]
    grid = np.indices(shape).astype(np.float32)
    dist = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0)) * voxel_mm
    z[:] = 8.0 * np.exp(-(dist / 8.0) ** 2)
    files["zmap"] = nib.Nifti1Image(z, affine)
    # colour FA on a 2 mm DWI-like grid: FA 0.5 in WM, 0.15 in GM, 0.05 in CSF (+ noise
    # 0.05), smooth random directions
    dwi_affine = affine.copy()
    dwi_affine[:3, :3] *= 2.0 / voxel_mm
    dwi_shape = tuple(int(np.ceil(n * voxel_mm / 2.0)) for n in shape)
    tissue = np.choose(np.asarray(sim.dseg.dataobj).astype(int).clip(0, 4),
                       [0.0, 0.05, 0.15, 0.5, 0.2]).astype(np.float32)
    fa = ndimage.zoom(tissue, [d / s for d, s in zip(dwi_shape, shape, strict=True)], order=1)
    fa = np.clip(fa + 0.05 * rng.normal(size=dwi_shape) * (fa > 0), 0, 1).astype(np.float32)
    v1 = ndimage.gaussian_filter(rng.normal(size=(*dwi_shape, 3)), (2, 2, 2, 0))
    v1 /= np.linalg.norm(v1, axis=-1, keepdims=True) + 1e-9
    files["fa"] = nib.Nifti1Image(fa, dwi_affine)
    files["v1"] = nib.Nifti1Image(v1.astype(np.float32), dwi_affine)
    args = []
    for key, img in files.items():
        path = folder / f"sub-01_ses-baseline_{key}.nii.gz"
        nib.save(img, path)
        args += [f"--{key}", str(path)]
    xfm = folder / "xfm.mat"
    savemat(xfm, {"AffineTransform_float_3_3": np.array([[1.0], [0], [0], [0], [1], [0], [0], [0],
                                                          [1], [0], [0], [0]]),
                  "fixed": np.zeros((3, 1))})
    return args + ["--xfm-dwi-to-t1w", str(xfm)]


def _ready_s(page: Path, chromium: str) -> float:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_FLAGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_function("window.resstoreReview && window.resstoreReview.ready",
                              timeout=120000)
        seconds = time.perf_counter() - start
        browser.close()
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", help="pipeline output folder (with --participant, --session)")
    parser.add_argument("--participant", default="sub-001")
    parser.add_argument("--session", default="baseline")
    parser.add_argument("--phantom-mm", type=float, help="simulate one session at this voxel size")
    parser.add_argument("--chromium", default="/usr/bin/chromium",
                        help="Chromium for the time-to-ready measurement ('' to skip)")
    parser.add_argument("--keep", help="copy the page here")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    from pipeline.cli import main as resstore

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.phantom_mm:
            inputs = _phantom_inputs(tmp, args.phantom_mm)
            participant, session = "sub-01", "baseline"
        elif args.output_dir:
            participant, session = args.participant, args.session
            inputs = _pipeline_inputs(Path(args.output_dir), participant, session)
        else:
            parser.error("give --output-dir or --phantom-mm")
        page = tmp / f"{participant}_ses-{session}_review.html"
        start = time.perf_counter()
        resstore(["report-review", "--participant", participant, "--session", session,
                  *inputs, "--out", str(page)])
        build_s = time.perf_counter() - start
        html = page.read_text()
        data = json.loads(html.split('id="page-data">', 1)[1].split("</script>", 1)[0])
        t1w = nib.load(inputs[inputs.index("--t1w") + 1])
        result = {"grid": "x".join(map(str, t1w.shape)),
                  "voxel_mm": float(np.round(t1w.header.get_zooms()[0], 3)),
                  "crop": "x".join(map(str, data["crop_shape"])),
                  "page_mb": page.stat().st_size / 1e6, "build_s": build_s,
                  "niivue_mb": len(html.split("<script>", 1)[1].split("</script>", 1)[0]) / 1e6}
        for volume in data["volumes"]:
            result[f"{volume['key']}_mb"] = len(volume["b64"]) / 1e6
        result["mask_mb"] = len(data["mask_b64"]) / 1e6
        result["volumes_gzip_mb"] = sum(len(base64.b64decode(v["b64"])) for v in data["volumes"]) / 1e6
        if args.chromium and Path(args.chromium).exists():
            result["chromium_ready_s"] = _ready_s(page, args.chromium)
        if args.keep:
            Path(args.keep).write_bytes(page.read_bytes())
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
