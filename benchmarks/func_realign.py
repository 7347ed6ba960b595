"""BOLD realignment: the pipeline's Gauss-Newton realignment against ANTs motion correction.

    python benchmarks/func_realign.py --out /tmp/realign [--runs 3 --volumes 150 --threads 1]

The stream realigns with its own rigid Gauss-Newton registration
(:func:`pipeline.func.motion.realign`); the library alternative already in the
environment is antspyx's ``ants.motion_correction`` (rigid, Mattes MI, every volume to
the first). Both run on phantom BOLD runs with known motion (``simulate_bold``, 3 mm);
the error is the RMS over volumes of the difference between estimated and true
displacement of points on a 50 mm sphere (the framewise-displacement radius), in mm.
Writes ``func_realign.json``. The stream keeps the method with the smaller error per
CPU second; the result is recorded in docs/fmri.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sphere_error(estimated: np.ndarray, truth: np.ndarray, centre: np.ndarray) -> float:
    """RMS (over volumes and 26 points of a 50 mm sphere about the head centre) of the
    distance between the points moved by the estimated and the true transforms."""
    directions = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                           if (i, j, k) != (0, 0, 0)], float)
    points = centre + 50.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    homog = np.c_[points, np.ones(len(points))]
    errors = [np.linalg.norm((homog @ e.T)[:, :3] - (homog @ t.T)[:, :3], axis=1)
              for e, t in zip(estimated, truth, strict=True)]
    return float(np.sqrt(np.mean(np.square(errors))))


def _ants_realign(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """ants.motion_correction (rigid) -> (T, 4, 4) reference -> volume-i world maps (RAS)."""
    import ants
    import nibabel as nib

    from pipeline.antsio import read_ants_affine, to_ants

    image = ants.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    reference = to_ants(nib.Nifti1Image(data[..., 0], affine))
    image.set_origin([*reference.origin, 0.0])
    image.set_spacing([*reference.spacing, 1.0])
    direction = np.eye(4)
    direction[:3, :3] = reference.direction
    image.set_direction(direction)
    result = ants.motion_correction(image, fixed=reference, type_of_transform="Rigid")
    # each transform maps reference (fixed) points to volume (moving) points
    return np.stack([read_ants_affine(t[0]) for t in result["motion_parameters"]])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3, help="phantom runs (seeds 0..runs-1)")
    parser.add_argument("--volumes", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1, help="ITK threads for ANTs")
    args = parser.parse_args(argv)
    from pipeline.antsio import set_threads

    set_threads(args.threads)
    from pipeline.func.motion import realign
    from pipeline.io import private_tempdir
    from pipeline.simulate.bold import simulate_bold
    from pipeline.simulate.layers import template_layers
    from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix

    layers = template_layers()
    rows = []
    with private_tempdir():
        for seed in range(args.runs):
            rng = np.random.default_rng(seed)
            smap = SessionMap(random_subject_warp(rng), rigid_matrix(rng.normal(0, 3, 3),
                                                                     rng.normal(0, 3, 3)))
            run = simulate_bold(rng=rng, layers=layers, session_map=smap, lesion=None,
                                lesion_side="left", amplitude_ipsilesional=1.0,
                                amplitude_contralesional=1.0, n_volumes=args.volumes)
            data = np.asarray(run.image.dataobj, dtype=np.float32)
            affine = run.image.affine
            truth = run.motion_transforms if hasattr(run, "motion_transforms") else None
            if truth is None:
                from pipeline.simulate.space import rigid_matrix as rigid

                truth = np.stack([rigid(m[:3], m[3:]) for m in run.motion])
            centre = affine[:3, :3] @ (np.asarray(data.shape[:3]) - 1) / 2 + affine[:3, 3]
            methods = {"gauss-newton (pipeline)": lambda d, a: realign(d, a).transforms,
                       "ants.motion_correction": _ants_realign}
            for name, method in methods.items():
                start, cpu = time.perf_counter(), _cpu()
                estimated = method(data, affine)
                rows.append({"run": seed, "method": name,
                             "rms_error_mm": round(_sphere_error(estimated, truth, centre), 4),
                             "wall_s": round(time.perf_counter() - start, 1),
                             "cpu_s": round(_cpu() - cpu, 1)})
                print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "func_realign.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
