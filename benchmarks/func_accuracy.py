"""Accuracy of the fMRI stream on phantom sessions (motion, peak hemisphere, LI, null sessions).

Each session: a new subject warp and head pose, lesion side drawn, a planted
amplitude laterality ``li = (a_I - a_C) / (a_I + a_C)`` of the two hand areas'
peak PSC, ``|li|`` uniform in [0.1, 0.7] and its sign drawn (after a stroke
either hemisphere can dominate; a pipeline that always answers "ipsilesional"
would pass an all-positive draw), total amplitude 2 % as in the trial writer --
or no task effect (``--null`` sessions). The truth peak hemisphere is the one
with the higher planted peak. The stream's science runs
exactly as in the workflow (``preprocess_bold`` -> ``fit_first_level`` ->
``m1_activation``) with the phantom's own M1 and brain masks on the BOLD grid
(the registration step is tested separately; the GLM mask is brain & head
mask, as the workflow's), then is compared with the truth.

Truth LI: ``(A_I - A_C) / (A_I + A_C)``, ``A`` the planted percent signal
change summed over a hemisphere's hand area (= over its M1, the only place
with activation); see ``pipeline.simulate.bold.simulate_bold``. The noise
bound of any M1-ROI LI is reported as ``li_oracle_hand_area``: the stream's
PSC map summed over the *true* hand areas, an ROI no pipeline can know.

Null sessions also report the spread of z over the brain (``z_sd_brain``,
``z_fraction_above_3.1``; a valid z-map has 1 and 0.001) and
``null_floor_p``: the chance that a *valid* null z-map (unit Gaussian noise
smoothed like the data, 6 mm FWHM, Monte Carlo) exceeds 3.1 somewhere in the
session's M1 -- the best specificity any valid voxel-wise test at z > 3.1
can reach there -- and ``null_no_suprathreshold_fwe_fraction``: the share of
null sessions with no M1 voxel above the small-volume FWE threshold
(``m1_fwe``, random field theory with the residuals' smoothness), the
workflow's ``bold_m1_active_fwe_ml_*``.

    python benchmarks/func_accuracy.py --sessions 20 --null 10 --voxel-mm 3 --volumes 150 \
        --json /tmp/func_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import time

import nibabel as nib
import numpy as np
from scipy import ndimage


def null_floor(m1, *, fwhm_mm, voxel_mm, threshold=3.1, n_fields=300, seed=0):
    """P(max over ``m1`` > threshold) for smoothed unit Gaussian noise (Monte Carlo)."""
    rng = np.random.default_rng(seed)
    box = ndimage.find_objects(m1.astype(np.uint8))[0]
    box = tuple(slice(max(b.start - 8, 0), b.stop + 8) for b in box)
    roi = m1[box]
    sigma = fwhm_mm / np.sqrt(8 * np.log(2)) / voxel_mm
    impulse = np.zeros((41, 41, 41))
    impulse[20, 20, 20] = 1.0
    scale = np.sqrt((ndimage.gaussian_filter(impulse, sigma) ** 2).sum())
    hits = [(ndimage.gaussian_filter(rng.standard_normal(roi.shape), sigma)[roi] / scale).max()
            > threshold for _ in range(n_fields)]
    return float(np.mean(hits))


def run_session(seed, *, layers, voxel_mm, n_volumes, null, n_dummy, motion_interpolation,
                noise_model):
    from pipeline.func.activation import HEMISPHERES, laterality_index, m1_activation, m1_fwe
    from pipeline.func.glm import confound_regressors, fit_first_level
    from pipeline.func.preprocess import preprocess_bold
    from pipeline.simulate.bold import simulate_bold
    from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix

    rng = np.random.default_rng(seed)
    warp = random_subject_warp(rng)
    smap = SessionMap(warp, rigid_matrix(rng.normal(0, 3.0, 3), rng.normal(0, 3.0, 3)))
    side = str(rng.choice(["left", "right"]))
    li = float(rng.uniform(0.1, 0.7) * rng.choice([-1.0, 1.0]))
    total = 0.0 if null else 2.0
    res = simulate_bold(rng=rng, layers=layers, session_map=smap, lesion=None, lesion_side=side,
                        amplitude_ipsilesional=total * (1 + li) / 2,
                        amplitude_contralesional=total * (1 - li) / 2,
                        n_volumes=n_volumes, voxel_mm=voxel_mm, n_dummy=n_dummy,
                        motion_interpolation=motion_interpolation)
    start = time.perf_counter()
    pre = preprocess_bold(res.image, tr_s=res.sidecar["RepetitionTime"], n_dummy=n_dummy,
                          slice_timing_s=res.sidecar["SliceTiming"])
    conf = confound_regressors(pre.motion.parameters, pre.confounds["framewise_displacement"],
                               motion_model="24", spike_threshold_mm=None)
    inside = (pre.mask.get_fdata() > 0) & (res.truth_maps["brain"].get_fdata() > 0)
    brain = nib.Nifti1Image(inside.astype(np.uint8), pre.mask.affine)
    glm = fit_first_level(pre.bold, res.events, conf, tr_s=res.sidecar["RepetitionTime"],
                          mask=brain, contrasts={"task": "move_affected_hand"},
                          slice_time_ref=pre.slice_time_ref, smoothing_fwhm_mm=6.0,
                          noise_model=noise_model)
    seconds = time.perf_counter() - start
    # truth masks are at volume 0; the stream's reference is the first kept volume
    m1 = {h: res.truth_maps[f"m1_{h}"].get_fdata() > 0 for h in ("ipsilesional", "contralesional")}
    z = glm.z_maps["task"].get_fdata()
    psc = glm.effect_maps["task"].get_fdata()
    metrics = m1_activation(z, psc, m1, lesion=None, z_threshold=3.1,
                            voxel_volume_ml=voxel_mm**3 / 1000, rng=np.random.default_rng(0))
    fwe = m1_fwe(z, m1, lesion=None, fwhm_voxels=glm.smoothness_fwhm_mm / voxel_mm,
                 voxel_volume_ml=voxel_mm**3 / 1000)
    # motion error in the truth convention: the estimate is relative to the first kept
    # volume r, the truth to volume 0 -> compare with M_i inv(M_r)
    from pipeline.func.motion import parameters_from_transforms
    from pipeline.simulate.space import rigid_matrix as rm

    truth_m = np.array([rm(p[:3], p[3:]) for p in res.motion])[n_dummy:]
    truth_rel = parameters_from_transforms(truth_m @ np.linalg.inv(truth_m[0]))
    err = pre.motion.parameters - truth_rel
    sums = {h: float(psc[m1[h]].sum()) for h in m1}
    # bound on any M1-ROI estimator: the estimated PSC summed over the *true* hand areas
    hand = {h: res.truth_maps[f"hand_area_{h}"].get_fdata() > 0 for h in m1}
    oracle = laterality_index(*(float(psc[hand[h]].sum()) for h in HEMISPHERES))
    extra = {"m1_sum_psc_ipsilesional": sums["ipsilesional"],
             "m1_sum_psc_contralesional": sums["contralesional"],
             **{f"truth_sum_psc_{h}": float(res.truth_maps["activation_psc"].get_fdata()[
                 res.truth_maps[f"hand_area_{h}"].get_fdata() > 0].sum()) for h in m1},
             "z_sd_brain": float(z[inside].std()),
             "z_fraction_above_3.1": float((z[inside] > 3.1).mean())}
    if null:
        extra["null_floor_p"] = null_floor(m1["ipsilesional"] | m1["contralesional"],
                                           fwhm_mm=6.0, voxel_mm=voxel_mm)
    peak = ("ipsilesional" if metrics["bold_m1_peak_z_ipsilesional"]
            >= metrics["bold_m1_peak_z_contralesional"] else "contralesional")
    return {
        "seed": seed, "null": null, "side": side,
        "motion_rms_mm": float(np.sqrt((err[:, :3] ** 2).mean())),
        "motion_rms_deg": float(np.sqrt((err[:, 3:] ** 2).mean())),
        "truth_li": res.truth["laterality_index"],
        "truth_peak": res.truth["peak_hemisphere"],
        "peak": peak,
        "max_z_m1": float(max(metrics["bold_m1_peak_z_ipsilesional"],
                              metrics["bold_m1_peak_z_contralesional"])),
        "fwe_z_threshold": fwe["bold_m1_fwe_z_threshold"],
        "smoothness_fwhm_mm": float(np.prod(glm.smoothness_fwhm_mm) ** (1 / 3)),
        "seconds_stream": seconds,
        **{k: v for k, v in metrics.items() if k.startswith("bold_laterality")},
        "li_oracle_hand_area": oracle,
        **extra,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10, help="sessions with a task effect")
    parser.add_argument("--null", type=int, default=5, help="sessions without a task effect")
    parser.add_argument("--voxel-mm", type=float, default=3.0)
    parser.add_argument("--volumes", type=int, default=150)
    parser.add_argument("--dummy", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--motion-interpolation", choices=("linear", "cubic"), default="linear",
                        help="phantom's resampling of the moving head (see simulate_bold)")
    parser.add_argument("--noise-model", default="ar1", help="fit_first_level noise_model")
    parser.add_argument("--json", help="write all rows here")
    args = parser.parse_args(argv)
    from pipeline.simulate.layers import template_layers

    layers = template_layers()
    rows = []
    for k in range(args.sessions + args.null):
        row = run_session(args.seed + k, layers=layers, voxel_mm=args.voxel_mm,
                          n_volumes=args.volumes, null=k >= args.sessions, n_dummy=args.dummy,
                          motion_interpolation=args.motion_interpolation,
                          noise_model=args.noise_model)
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}),
              flush=True)
    active = [r for r in rows if not r["null"]]
    null = [r for r in rows if r["null"]]
    summary = {
        "motion_rms_mm_max": max(r["motion_rms_mm"] for r in rows),
        "motion_rms_deg_max": max(r["motion_rms_deg"] for r in rows),
    }
    if active:
        summary["peak_correct_fraction"] = float(np.mean([r["peak"] == r["truth_peak"] for r in active]))
        for key in ("bold_laterality_index_threshold", "bold_laterality_index_bootstrap",
                    "bold_laterality_index_roi", "li_oracle_hand_area"):
            err = np.array([r[key] - r["truth_li"] for r in active])
            summary[f"{key}_max_abs_error"] = float(np.nanmax(np.abs(err)))
            summary[f"{key}_mean_abs_error"] = float(np.nanmean(np.abs(err)))
            summary[f"{key}_mean_error"] = float(np.nanmean(err))
            summary[f"{key}_within_0.15"] = float(np.mean(np.abs(err) <= 0.15))
    if null:
        summary["null_no_suprathreshold_fraction"] = float(np.mean([r["max_z_m1"] <= 3.1 for r in null]))
        summary["null_no_suprathreshold_fwe_fraction"] = float(np.mean(
            [r["max_z_m1"] <= r["fwe_z_threshold"] for r in null]))
        summary["null_floor_no_suprathreshold_fraction"] = 1 - float(np.mean([r["null_floor_p"]
                                                                           for r in null]))
        summary["null_z_sd_brain_mean"] = float(np.mean([r["z_sd_brain"] for r in null]))
        summary["null_z_fraction_above_3.1_mean"] = float(np.mean([r["z_fraction_above_3.1"]
                                                                  for r in null]))
    summary["seconds_stream_mean"] = float(np.mean([r["seconds_stream"] for r in rows]))
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "summary": summary, "args": vars(args)}, fh, indent=1)


if __name__ == "__main__":
    main()
