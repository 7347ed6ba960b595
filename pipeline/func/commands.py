"""``resstore func-preproc | func-coreg | func-glm``: the motor-task fMRI stream."""

from __future__ import annotations

import logging

log = logging.getLogger("pipeline.func")


def _pairs(items, what):
    from pipeline.errors import PipelineInputError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise PipelineInputError(item, f"{what} must be NAME=VALUE")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def _cmd_preproc(args) -> None:
    from pipeline.antsio import set_threads

    set_threads(args.threads)
    from pathlib import Path

    import numpy as np

    from pipeline.func import figures
    from pipeline.func.inputs import load_bold_run
    from pipeline.func.preprocess import preprocess_bold
    from pipeline.io import _atomic_write, save_image, write_json

    run = load_bold_run(args.bold, args.events, dummy_scans=args.dummy_scans)
    pre = preprocess_bold(run.image, tr_s=run.tr_s, n_dummy=run.n_dummy,
                          slice_timing_s=run.slice_timing_s,
                          slice_timing_correction=args.slice_timing_correction == "yes",
                          fd_threshold_mm=args.fd_threshold_mm, slice_axis=run.slice_axis)
    params = {"n_dummy": run.n_dummy, "tr_s": run.tr_s, "slice_time_ref": pre.slice_time_ref,
              "slice_timing_corrected": run.slice_timing_s is not None
              and args.slice_timing_correction == "yes",
              "motion_reference": "first volume after the dummy scans",
              "fd_threshold_mm": args.fd_threshold_mm,
              "motion_convention": "T_i maps the head at the reference to volume i (scanner mm); "
                                   "R = Rz Ry Rx about the scanner origin"}
    save_image(pre.bold, args.out_bold, sources=[args.bold], parameters=params,
               description="motion- and slice-timing-corrected BOLD (dummy scans removed)")
    save_image(pre.reference, args.out_boldref, sources=[args.bold], parameters=params,
               description="temporal mean of the corrected BOLD", dtype="float32")
    save_image(pre.mask, args.out_mask, sources=[args.bold], description="head mask of the boldref",
               dtype="uint8")
    _atomic_write(__import__("pathlib").Path(args.out_confounds),
                  lambda tmp: pre.confounds.to_csv(tmp, sep="\t", index=False, float_format="%.6g"))
    fd = pre.confounds["framewise_displacement"].to_numpy()
    tsnr = pre.tsnr.get_fdata()
    motion = pre.motion.parameters
    metrics = {
        "bold_n_volumes": int(run.image.shape[3]),
        "bold_n_dummy": int(run.n_dummy),
        "bold_tr_s": float(run.tr_s),
        "bold_voxel_mm": float(np.mean(run.image.header.get_zooms()[:3])),
        "bold_fd_mean_mm": float(fd[1:].mean()),
        "bold_fd_max_mm": float(fd.max()),
        "bold_outlier_volumes": int(pre.confounds["outlier"].sum()),
        "bold_outlier_fraction": float(pre.confounds["outlier"].mean()),
        "bold_motion_max_translation_mm": float(np.abs(motion[:, :3]).max()),
        "bold_motion_max_rotation_deg": float(np.abs(motion[:, 3:]).max()),
        "bold_tsnr_median": float(np.median(tsnr[tsnr > 0])) if (tsnr > 0).any() else float("nan"),
        "bold_dvars_mean_percent": float(pre.confounds["dvars_percent"].to_numpy()[1:].mean()),
    }
    write_json(args.out_metrics, metrics)
    figures.motion_carpet_figure(pre.confounds, pre.bold, pre.mask, args.out_figure_motion,
                                 tr_s=run.tr_s, fd_threshold_mm=args.fd_threshold_mm,
                                 title=f"{Path(args.bold).name}: motion, FD, DVARS, carpet")
    figures.overlay_figure(pre.reference, pre.tsnr, args.out_figure_tsnr, threshold=0.0,
                           cmap="viridis", label="tSNR", title="tSNR after motion correction")


def _cmd_coreg(args) -> None:
    from pipeline.antsio import set_threads

    set_threads(args.threads)
    import nibabel as nib
    import numpy as np

    from pipeline.func.registration import bold_to_t1w, register_bold_to_t1w
    from pipeline.io import provenance, sidecar_path, write_json
    from pipeline.orientation import check_same_grid, read_image
    from pipeline.qc import iqm
    from pipeline.qc.figures import mosaic

    boldref = read_image(args.boldref, what="BOLD reference")
    t1w = read_image(args.t1w, what="T1w")
    brain = read_image(args.brain_mask, what="brain mask")
    check_same_grid(t1w, brain_mask=brain)
    reg = register_bold_to_t1w(boldref, t1w, brain, out_transform=args.out_xfm,
                               registration_voxel_mm=args.registration_voxel_mm)
    write_json(args.out_metrics, reg.metrics)
    write_json(sidecar_path(args.out_xfm), provenance(
        sources=[args.boldref, args.t1w], description="ANTs rigid BOLD reference -> T1w",
        parameters={"registration_voxel_mm": args.registration_voxel_mm,
                    "t1w_from_bold_ras": np.round(reg.t1w_from_bold, 6).tolist()}))
    moved = bold_to_t1w(boldref, t1w, args.out_xfm)
    edge = iqm.head_mask(moved.get_fdata(dtype=np.float32))
    mosaic(t1w, args.out_figure,
           contours={"BOLD head outline": nib.Nifti1Image(edge.astype(np.uint8), t1w.affine),
                     "T1w brain mask": brain},
           title="BOLD reference outline on the T1w")


def _cmd_glm(args) -> None:
    from pipeline.antsio import set_threads

    set_threads(args.threads)
    from pathlib import Path

    import nibabel as nib
    import numpy as np
    import pandas as pd

    from pipeline import validate
    from pipeline.errors import PipelineInputError
    from pipeline.func import figures
    from pipeline.func.activation import HEMISPHERES, m1_activation, m1_fwe
    from pipeline.func.glm import check_events, confound_regressors, fit_first_level
    from pipeline.func.registration import bold_to_t1w, labels_to_bold, t1w_to_bold
    from pipeline.io import _atomic_write, read_json, save_image, write_json
    from pipeline.orientation import check_same_grid, read_image
    from pipeline.side import read_lesion_side
    from pipeline.templates import ATLAS_REGION_LABELS

    contrasts = _pairs(args.contrast, "--contrast")
    zmap_paths = _pairs(args.out_zmap, "--out-zmap")
    if args.primary_contrast not in contrasts:
        raise PipelineInputError(args.primary_contrast, f"is not one of the contrasts {list(contrasts)}")
    bold = read_image(args.bold, what="preprocessed BOLD", ndim=(4,))
    sidecar = read_json(str(args.bold).replace(".nii.gz", ".json"))
    tr_s = float(bold.header.get_zooms()[3])
    slice_time_ref = float(sidecar["Parameters"]["slice_time_ref"])
    n_dummy = int(sidecar["Parameters"]["n_dummy"])
    events = validate.read_events(args.events)
    events = check_events(events, contrasts, run_s=bold.shape[3] * tr_s, path=args.events)
    confounds = pd.read_csv(args.confounds, sep="\t")
    motion_cols = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    regressors = confound_regressors(
        confounds[motion_cols].to_numpy(), confounds["framewise_displacement"].to_numpy(),
        motion_model=args.motion_regressors,
        spike_threshold_mm=args.fd_threshold_mm if args.spike_regressors == "yes" else None)

    boldref = read_image(args.boldref, what="BOLD reference")
    brain_t1w = read_image(args.brain_mask, what="brain mask")
    brain_frac = t1w_to_bold(nib.Nifti1Image(np.asarray(brain_t1w.dataobj, dtype=np.float32),
                                             brain_t1w.affine), boldref, args.xfm).get_fdata()
    head_img = read_image(args.bold_mask, what="BOLD head mask")
    check_same_grid(boldref, bold=nib.Nifti1Image(np.zeros(bold.shape[:3], np.uint8), bold.affine),
                    head_mask=head_img)
    head = np.asarray(head_img.dataobj) > 0
    glm_mask = nib.Nifti1Image(((brain_frac >= 0.5) & head).astype(np.uint8), boldref.affine)
    params = {"hrf_model": args.hrf_model, "high_pass_hz": args.high_pass_hz,
              "smoothing_fwhm_mm": args.smoothing_fwhm_mm, "noise_model": args.noise_model,
              "autocorrelation": "none (OLS)" if args.noise_model == "ols" else (
                  "OLS residual autocorrelation smoothed (15 mm FWHM) and corrected for the "
                  "design's bias under the AR model (Worsley et al. 2002)"),
              "motion_regressors": args.motion_regressors, "spike_regressors": args.spike_regressors,
              "fd_threshold_mm": args.fd_threshold_mm, "contrasts": contrasts,
              "slice_time_ref": slice_time_ref, "n_dummy_removed": n_dummy}
    glm = fit_first_level(bold, events, regressors, tr_s=tr_s, mask=glm_mask, contrasts=contrasts,
                          slice_time_ref=slice_time_ref, hrf_model=args.hrf_model,
                          high_pass_hz=args.high_pass_hz,
                          smoothing_fwhm_mm=args.smoothing_fwhm_mm or None,
                          noise_model=args.noise_model)
    for name, path in zmap_paths.items():
        if name not in glm.z_maps:
            raise PipelineInputError(path, f"no contrast named {name!r}")
        save_image(glm.z_maps[name], path, sources=[args.bold, args.events], dtype="float32",
                   parameters={**params, "contrast": contrasts[name]},
                   description=f"z-map of {name} ({contrasts[name]}), BOLD space")
    design = glm.design_matrix.reset_index(names="frame_time_s")
    _atomic_write(Path(args.out_design),
                  lambda tmp: design.to_csv(tmp, sep="\t", index=False, float_format="%.6g"))
    figures.design_figure(glm.design_matrix, args.out_figure_design,
                          title=f"Design matrix ({args.hrf_model} HRF, cosine drift)")

    # M1 and lesion on the BOLD grid, through the BOLD->T1w transform
    z = glm.z_maps[args.primary_contrast].get_fdata()
    psc = glm.effect_maps[args.primary_contrast].get_fdata()
    label_of = {name: value for value, name in ATLAS_REGION_LABELS.items()}
    atlas = read_image(args.atlas, what="atlas dseg")
    m1_side = labels_to_bold(atlas, boldref, args.xfm,
                             label_values=(label_of["m1_left"], label_of["m1_right"]),
                             min_fraction=args.atlas_min_fraction)
    lesion = None
    if args.lesion:
        lesion_t1w = read_image(args.lesion, what="lesion mask")
        frac = t1w_to_bold(nib.Nifti1Image((np.asarray(lesion_t1w.dataobj) > 0).astype(np.float32),
                                           lesion_t1w.affine), boldref, args.xfm).get_fdata()
        lesion = frac >= args.lesion_min_fraction
    side = read_lesion_side(args.lesion_side)
    dseg = np.zeros(z.shape, dtype=np.uint8)
    dseg[m1_side[label_of["m1_left"]]] = label_of["m1_left"]
    dseg[m1_side[label_of["m1_right"]]] = label_of["m1_right"]
    if lesion is not None:
        dseg[lesion] = 5
    save_image(nib.Nifti1Image(dseg, boldref.affine), args.out_m1, sources=[args.atlas, args.lesion or ""],
               parameters={"atlas_min_fraction": args.atlas_min_fraction,
                           "lesion_min_fraction": args.lesion_min_fraction,
                           "labels": {"3": "m1_left", "4": "m1_right", "5": "lesion"}},
               description="M1 (Juelich BA4a+BA4p) and lesion on the BOLD grid", dtype="uint8")
    voxel_ml = float(abs(np.linalg.det(boldref.affine[:3, :3]))) / 1000.0
    fwhm_voxels = glm.smoothness_fwhm_mm / np.asarray(boldref.header.get_zooms()[:3], dtype=float)
    if side.lateralised:
        m1 = {role: m1_side[label_of[f"m1_{hemisphere}"]]
              for role, hemisphere in side.roles().items()}
        metrics = m1_activation(z, psc, m1, lesion=lesion, z_threshold=args.z_threshold,
                                voxel_volume_ml=voxel_ml, rng=np.random.default_rng(args.seed))
        metrics.update(m1_fwe(z, m1, lesion=lesion, fwhm_voxels=fwhm_voxels,
                              voxel_volume_ml=voxel_ml, alpha=args.fwe_alpha))
    else:
        log.warning("lesion side %r: ipsilesional/contralesional metrics are NA", side.side)
        empty = {h: np.zeros(z.shape, dtype=bool) for h in HEMISPHERES}
        metrics = {k: float("nan") for k in m1_activation(
            z, psc, empty, lesion=None, z_threshold=args.z_threshold, voxel_volume_ml=voxel_ml,
            rng=np.random.default_rng(0))}
        metrics.update(m1_fwe(z, empty, lesion=None, fwhm_voxels=fwhm_voxels,
                              voxel_volume_ml=voxel_ml, alpha=args.fwe_alpha))
    metrics["bold_smoothness_fwhm_mm"] = float(np.prod(glm.smoothness_fwhm_mm) ** (1 / 3))
    write_json(args.out_metrics, metrics)

    t1w = read_image(args.t1w, what="T1w")
    check_same_grid(t1w, brain_mask=brain_t1w, atlas=atlas)
    z_t1w = bold_to_t1w(glm.z_maps[args.primary_contrast], t1w, args.xfm)
    save_image(z_t1w, args.out_zmap_t1w, sources=[zmap_paths.get(args.primary_contrast, args.bold)],
               parameters=params, dtype="float32",
               description=f"z-map of {args.primary_contrast} resampled to the T1w (linear)")
    atlas_data = np.rint(np.asarray(atlas.dataobj))
    contours = {name: nib.Nifti1Image((atlas_data == label_of[name]).astype(np.uint8), atlas.affine)
                for name in ("m1_left", "m1_right")}
    if args.lesion:
        contours["lesion"] = lesion_t1w
    figures.overlay_figure(t1w, z_t1w, args.out_figure_zmap, threshold=args.z_threshold,
                           contours=contours,
                           title=f"{args.primary_contrast}: z > {args.z_threshold:g}; "
                                 "M1 left blue, right green, lesion yellow")


def register(command) -> None:
    p = command("func-preproc", _cmd_preproc,
                "BOLD checks, dummy scans, motion + slice-timing correction, FD/DVARS, QC figures")
    for opt in ("--bold", "--events", "--out-bold", "--out-boldref", "--out-mask", "--out-confounds",
                "--out-metrics", "--out-figure-motion", "--out-figure-tsnr"):
        p.add_argument(opt, required=True)
    p.add_argument("--dummy-scans", type=int, default=None,
                   help="volumes to drop (default: the sidecar's DummyScans, else 0)")
    p.add_argument("--slice-timing-correction", choices=("yes", "no"), default="yes")
    p.add_argument("--fd-threshold-mm", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)

    p = command("func-coreg", _cmd_coreg, "rigid BOLD reference -> T1w registration (ANTs, MI)")
    for opt in ("--boldref", "--t1w", "--brain-mask", "--out-xfm", "--out-metrics", "--out-figure"):
        p.add_argument(opt, required=True)
    p.add_argument("--registration-voxel-mm", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1)

    p = command("func-glm", _cmd_glm, "first-level GLM, z-maps, M1 activation and laterality")
    for opt in ("--bold", "--bold-mask", "--confounds", "--events", "--boldref", "--xfm", "--t1w",
                "--brain-mask", "--atlas", "--out-design", "--out-figure-design", "--out-m1",
                "--out-metrics", "--out-zmap-t1w", "--out-figure-zmap", "--primary-contrast"):
        p.add_argument(opt, required=True)
    p.add_argument("--lesion", help="lesion mask in T1w space (optional)")
    p.add_argument("--lesion-side", help="JSON with lesion_side (left|right|bilateral|none)")
    p.add_argument("--contrast", action="append", required=True, help="NAME=nilearn expression")
    p.add_argument("--out-zmap", action="append", required=True, help="NAME=path")
    p.add_argument("--hrf-model", default="spm")
    p.add_argument("--high-pass-hz", type=float, default=1 / 128)
    p.add_argument("--smoothing-fwhm-mm", type=float, default=6.0)
    p.add_argument("--noise-model", choices=("ar1", "ar2", "ar3", "ols"), default="ar1",
                   help="AR(p): pre-whitening with bias-corrected, 15 mm-smoothed autocorrelation")
    p.add_argument("--motion-regressors", choices=("6", "24"), default="24")
    p.add_argument("--spike-regressors", choices=("yes", "no"), default="yes")
    p.add_argument("--fd-threshold-mm", type=float, default=0.5)
    p.add_argument("--z-threshold", type=float, default=3.1)
    p.add_argument("--fwe-alpha", type=float, default=0.05,
                   help="family-wise error rate of the small-volume-corrected M1 threshold")
    p.add_argument("--atlas-min-fraction", type=float, default=0.5)
    p.add_argument("--lesion-min-fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0, help="bootstrap LI random seed")
    p.add_argument("--threads", type=int, default=1)
