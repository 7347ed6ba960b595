"""Phantom sessions for the lesion-stream benchmarks (shared by lesion_*.py).

Each subject gets a subacute baseline and a chronic 6-month session drawn by
:func:`pipeline.simulate.anatomy.simulate_structural` (bias field, Rician
noise, subject warp, head pose), plus lesion-free subjects; the anatomy
stream's first step (:func:`pipeline.anat.brainmask.template_brain_mask`)
is run on each T1w, since the lesion stream reuses its outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np


def simulate_sessions(out_dir, *, volumes_ml=(1.5, 6.0, 25.0, 140.0), n_lesion_free=1,
                      voxel_mm=2.0, seed=11):
    """Write T1w, FLAIR, truth and anat outputs; return a list of session dicts."""
    from pipeline.anat.brainmask import template_brain_mask
    from pipeline.simulate.anatomy import plan_lesion, simulate_structural
    from pipeline.simulate.layers import template_layers
    from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix

    out = Path(out_dir)
    done = out / "sessions.json"
    if done.exists():  # phantoms already written (same arguments): reuse them
        return json.loads(done.read_text())
    layers = template_layers()
    sessions = []
    plans = list(volumes_ml) + [None] * n_lesion_free
    for i, volume in enumerate(plans):
        rng = np.random.default_rng([seed, i])
        side = ("left", "right")[i % 2]
        warp = random_subject_warp(rng)
        plan = None if volume is None else plan_lesion(rng, layers, side=side, volume_ml=volume,
                                                       chronic_fraction=0.75)
        for s_index, ses in enumerate(("baseline", "m06")):
            pose = rigid_matrix(rng.normal(0, 3.0, 3), rng.normal(0, 3.0, 3))
            stage = None if plan is None else ("subacute", "chronic")[s_index]
            sim = simulate_structural(rng=rng, layers=layers, session_map=SessionMap(warp, pose),
                                      lesion_plan=plan, lesion_stage=stage, voxel_mm=voxel_mm)
            d = out / f"sub-{i:02d}" / f"ses-{ses}"
            d.mkdir(parents=True, exist_ok=True)
            paths = {k: str(d / f"{k}.nii.gz") for k in
                     ("t1w", "flair", "truth_lesion", "cst_left", "cst_right", "preproc",
                      "brain_mask", "xfm")}
            paths["xfm"] = str(d / "xfm.mat")
            nib.save(sim.t1w, paths["t1w"])
            nib.save(sim.flair, paths["flair"])
            nib.save(sim.lesion, paths["truth_lesion"])
            nib.save(sim.regions["cst_left"], paths["cst_left"])
            nib.save(sim.regions["cst_right"], paths["cst_right"])
            res = template_brain_mask(sim.t1w)
            nib.save(res.t1w_preproc, paths["preproc"])
            nib.save(res.brain_mask, paths["brain_mask"])
            Path(paths["xfm"]).write_bytes(Path(res.affine_transform[0]).read_bytes())
            sessions.append({"subject": f"{i:02d}", "session": ses, "stage": stage,
                             "side": side if plan else "none", **paths,
                             "truth": sim.truth})
    done.write_text(json.dumps(sessions, indent=1, default=float))
    return sessions
