"""Cortical thickness of nilearn's MNI152 2009a T1 (issue 3: published adult
range 2.3-2.8 mm), with the measurements needed to judge the number.

    python benchmarks/anat_mni_thickness.py --out /tmp/mni_thickness
    python benchmarks/anat_mni_thickness.py --out /tmp/mni_thickness --jumps 3 2 1.5 --direct

The template is segmented as a T1w is (identity transform to MNI152), then:

- the configured thickness (configs/config.yaml), mean over the central
  surface, per hemisphere, in M1 and the thinnest / thickest Desikan-Killiany
  regions;
- ``--jumps``: the same with other sulcal-skeleton jumps (the parameter that
  decides how many touching sulcal banks are opened, i.e. how much of the
  template's blurred folding is reconstructed);
- the same thickness on the template's own GM/WM/CSF maps (the average of
  its subjects' segmentations) instead of the segmentation of its T1;
- ``--direct``: DiReCT with ANTs' default settings on the same segmentation
  (over 35 min on one core for the 1 mm template; not timed to the end);
- geometry: cortical GM volume and the areas of the white (GM/WM) and pial
  ((GM+WM)/CSF) surfaces by marching cubes, restricted to within 3 mm of a
  Desikan-Killiany cortical label. A volume-preserving thickness is about
  cortical GM volume / central-surface area; an average template, whose
  folds are averaged away, has less surface than any of its subjects, so it
  reads thick.

Writes ``anat_mni_thickness.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def surface_area_cm2(field: np.ndarray, level: float, keep: np.ndarray, zooms) -> float:
    """Area (cm^2) of the ``level`` iso-surface of ``field`` over faces whose
    centre lies in ``keep``."""
    from skimage import measure

    verts, faces, _, _ = measure.marching_cubes(field, level, spacing=tuple(zooms))
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    centre = np.rint(tri.mean(axis=1) / np.asarray(zooms)).astype(int)
    return float(area[keep[tuple(centre.T)]].sum() / 100.0)


def geometry(probseg, dk, zooms) -> dict:
    from scipy import ndimage

    cortex_labels = (dk >= 1000) & (dk < 3000)
    near = ndimage.distance_transform_edt(~cortex_labels, sampling=zooms) <= 3.0
    gm, wm = probseg[..., 1], probseg[..., 2]
    voxel_ml = float(np.prod(zooms)) / 1000.0
    white = surface_area_cm2(ndimage.gaussian_filter(wm, 0.5), 0.5, near, zooms)
    pial = surface_area_cm2(ndimage.gaussian_filter(gm + wm, 0.5), 0.5, near, zooms)
    gm_ml = float(gm[near].sum() * voxel_ml)
    return {"cortical_gm_ml": round(gm_ml, 1), "white_surface_cm2": round(white, 1),
            "pial_surface_cm2": round(pial, 1),
            "gm_ml_over_white_area_mm": round(gm_ml * 1000 / (white * 100), 2)}


def template_tissue_segmentation():
    """Labels and (CSF, GM, WM) probabilities from nilearn's MNI152 2009a tissue maps."""
    import nibabel as nib

    from pipeline.anat.segment import template_tissue_probabilities

    maps = template_tissue_probabilities()
    probs = np.stack([m.get_fdata(dtype=np.float32) for m in maps], axis=-1)
    labels = np.where(probs.sum(-1) > 0.5, 1 + np.argmax(probs, -1), 0).astype(np.uint8)
    return (nib.Nifti1Image(labels, maps[0].affine), nib.Nifti1Image(probs, maps[0].affine))


def summary(metrics: dict, table) -> dict:
    ordered = table.sort_values("thickness_mean_mm")
    pick = lambda rows: {r.region: round(r.thickness_mean_mm, 2)  # noqa: E731
                         for r in rows.itertuples()}
    return {"mean_mm": round(metrics["thickness_mean_mm"], 3),
            "hemisphere_left_mm": round(metrics["thickness_hemisphere_ipsilesional_mm"], 3),
            "hemisphere_right_mm": round(metrics["thickness_hemisphere_contralesional_mm"], 3),
            "m1_left_mm": round(metrics["thickness_m1_ipsilesional_mm"], 3),
            "m1_right_mm": round(metrics["thickness_m1_contralesional_mm"], 3),
            "thinnest": pick(ordered.head(4)), "thickest": pick(ordered.tail(4)),
            "in_adult_range_2.3_2.8": bool(2.3 <= metrics["thickness_mean_mm"] <= 2.8)}


def main(argv=None) -> None:
    import ants
    import yaml

    from pipeline import templates
    from pipeline.anat.register import atlas_regions_t1w, label_atlas_t1w
    from pipeline.anat.segment import segment_tissues
    from pipeline.anat.thickness import KK_DEFAULT, cortical_thickness, regional_thickness

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--jumps", type=float, nargs="*", default=[],
                        help="other sulcal-skeleton jumps (mm) to measure")
    parser.add_argument("--direct", action="store_true",
                        help="also DiReCT with ANTs' defaults (slow)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "config.yaml")
                         .read_text())["anat"]

    t1 = templates.nilearn_tissue_templates()["t1"]
    identity = out / "identity.mat"
    ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform",
                                                    dimension=3), str(identity))
    start = time.perf_counter()
    seg = segment_tissues(t1, str(identity), prior_weight=cfg["prior_weight"],
                          mrf_weight=cfg["mrf_weight"])
    regions = atlas_regions_t1w(t1, str(identity))
    dk = label_atlas_t1w("desikan_killiany", t1, str(identity))
    report = {"template": "MNI152NLin2009aSym (nilearn), 1 mm", "config": cfg,
              "segment_s": round(time.perf_counter() - start, 1)}
    zooms = np.asarray(t1.header.get_zooms()[:3], float)
    report["geometry"] = geometry(seg.probseg.get_fdata(dtype=np.float32),
                                  np.asarray(dk.dataobj).astype(np.int32), zooms)

    def measure(dseg=seg.dseg, probseg=seg.probseg, **options):
        start = time.perf_counter()
        thick, weight = cortical_thickness(dseg, probseg, with_surface_weight=True, **options)
        metrics, table = regional_thickness(thick, dseg, regions, dk, lesion_side="left",
                                            weight=weight)
        wall = round(time.perf_counter() - start, 1)
        voxels, _ = regional_thickness(thick, dseg, regions, dk, lesion_side="left")
        return {"options": options, "wall_s": wall, **summary(metrics, table),
                "mean_over_gm_voxels_mm": round(voxels["thickness_mean_mm"], 3)}

    laplace = {"grid_mm": cfg["thickness_grid_mm"]}
    if cfg["thickness_method"] == "laplace":
        configured = measure(method="laplace", sulcal_jump_mm=cfg["thickness_sulcal_jump_mm"],
                             **laplace)
    else:
        configured = measure(method="direct", voxel_mm=cfg["thickness_voxel_mm"],
                             iterations=cfg["thickness_iterations"])
    report["configured"] = configured
    if cfg["thickness_method"] == "laplace":
        report["template_tissue_maps"] = measure(
            *template_tissue_segmentation(), method="laplace",
            sulcal_jump_mm=cfg["thickness_sulcal_jump_mm"], **laplace)
    report["laplace_jumps"] = [measure(method="laplace", sulcal_jump_mm=jump or None, **laplace)
                               for jump in args.jumps]
    if args.direct:
        report["direct_default"] = measure(method="direct", voxel_mm=None, **KK_DEFAULT)
    (out / "anat_mni_thickness.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=1))


if __name__ == "__main__":
    main()
