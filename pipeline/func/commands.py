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
    from pipeline.func.registration import bold_to_t1w
    from pipeline.func.session import LABEL, LESION_LABEL, GlmOptions, analyse_session
    from pipeline.io import _atomic_write, read_json, save_image, write_json
    from pipeline.orientation import read_image
    from pipeline.side import read_lesion_side

    contrasts = _pairs(args.contrast, "--contrast")
    zmap_paths = _pairs(args.out_zmap, "--out-zmap")
    if args.primary_contrast not in contrasts:
        raise PipelineInputError(args.primary_contrast, f"is not one of the contrasts {list(contrasts)}")
    bold = read_image(args.bold, what="preprocessed BOLD", ndim=(4,))
    preproc = read_json(args.bold_sidecar)["Parameters"]
    tr_s = float(bold.header.get_zooms()[3])
    options = GlmOptions(
        hrf_model=args.hrf_model, high_pass_hz=args.high_pass_hz,
        smoothing_fwhm_mm=args.smoothing_fwhm_mm, noise_model=args.noise_model,
        motion_regressors=args.motion_regressors, spike_regressors=args.spike_regressors == "yes",
        fd_threshold_mm=args.fd_threshold_mm, z_threshold=args.z_threshold,
        fwe_alpha=args.fwe_alpha, atlas_min_fraction=args.atlas_min_fraction,
        lesion_min_fraction=args.lesion_min_fraction, seed=args.seed)
    lesion_t1w = read_image(args.lesion, what="lesion mask") if args.lesion else None
    atlas = read_image(args.atlas, what="atlas dseg")
    result = analyse_session(
        bold, read_image(args.bold_mask, what="BOLD head mask"),
        read_image(args.boldref, what="BOLD reference"),
        pd.read_csv(args.confounds, sep="\t"), validate.read_events(args.events),
        contrasts=contrasts, primary=args.primary_contrast, tr_s=tr_s,
        slice_time_ref=float(preproc["slice_time_ref"]), xfm=args.xfm,
        brain_t1w=read_image(args.brain_mask, what="brain mask"), atlas_t1w=atlas,
        lesion_t1w=lesion_t1w, side=read_lesion_side(args.lesion_side), options=options,
        events_path=args.events)
    glm = result.glm
    params = {**vars(options), "contrasts": contrasts, "slice_time_ref": preproc["slice_time_ref"],
              "n_dummy_removed": preproc["n_dummy"],
              "autocorrelation": "none (OLS)" if args.noise_model == "ols" else (
                  "OLS residual autocorrelation smoothed (15 mm FWHM) and corrected for the "
                  "design's bias under the AR model (Worsley et al. 2002)")}
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
    save_image(result.regions, args.out_m1, sources=[args.atlas, args.lesion or ""],
               parameters={"atlas_min_fraction": args.atlas_min_fraction,
                           "lesion_min_fraction": args.lesion_min_fraction,
                           "labels": {str(LABEL["m1_left"]): "m1_left",
                                      str(LABEL["m1_right"]): "m1_right",
                                      str(LESION_LABEL): "lesion"}},
               description="M1 (Juelich BA4a+BA4p) and lesion on the BOLD grid", dtype="uint8")
    write_json(args.out_metrics, result.metrics)

    t1w = read_image(args.t1w, what="T1w")
    z_t1w = bold_to_t1w(glm.z_maps[args.primary_contrast], t1w, args.xfm)
    save_image(z_t1w, args.out_zmap_t1w, sources=[zmap_paths.get(args.primary_contrast, args.bold)],
               parameters=params, dtype="float32",
               description=f"z-map of {args.primary_contrast} resampled to the T1w (linear)")
    atlas_data = np.rint(np.asarray(atlas.dataobj))
    contours = {name: nib.Nifti1Image((atlas_data == LABEL[name]).astype(np.uint8), atlas.affine)
                for name in ("m1_left", "m1_right")}
    if lesion_t1w is not None:
        contours["lesion"] = lesion_t1w
    figures.overlay_figure(t1w, z_t1w, args.out_figure_zmap, threshold=args.z_threshold,
                           contours=contours,
                           title=f"{args.primary_contrast}: z > {args.z_threshold:g}; "
                                 "M1 left blue, right green, lesion yellow")


def register(command) -> None:
    from pipeline.config import add_file_options as files
    from pipeline.config import add_schema_option, add_schema_options, add_threads_option

    p = command("func-preproc", _cmd_preproc,
                "BOLD checks, dummy scans, motion + slice-timing correction, FD/DVARS, QC figures")
    files(p, ("--bold", "raw BOLD run (any storage orientation)"),
          ("--events", "BIDS events.tsv of the run"),
          ("--out-bold", "corrected BOLD (canonical BOLD grid; its JSON sidecar holds "
                         "slice_time_ref and n_dummy for func-glm)"),
          ("--out-boldref", "temporal mean of the corrected run"),
          ("--out-mask", "head mask of the BOLD reference"),
          ("--out-confounds", "confounds TSV (motion, FD, DVARS, outliers)"),
          ("--out-metrics", "metrics JSON"), ("--out-figure-motion", "motion/carpet figure (PNG)"),
          ("--out-figure-tsnr", "tSNR figure (PNG)"))
    add_schema_option(p, "func", "dummy_scans")
    add_schema_option(p, "func", "slice_timing_correction")
    add_schema_option(p, "qc", "bold_fd_threshold_mm", flag="--fd-threshold-mm")
    add_threads_option(p)

    p = command("func-coreg", _cmd_coreg, "rigid BOLD reference -> T1w registration (ANTs, MI)")
    files(p, ("--boldref", "BOLD reference (func-preproc)"), ("--t1w", "N4-corrected T1w"),
          ("--brain-mask", "T1w brain mask (through the SyN)"),
          ("--out-xfm", "ANTs rigid transform BOLD -> T1w"), ("--out-metrics", "metrics JSON"),
          ("--out-figure", "registration figure (PNG)"))
    add_schema_option(p, "func", "registration_voxel_mm")
    add_threads_option(p, help="ITK threads")

    p = command("func-glm", _cmd_glm, "first-level GLM, z-maps, M1 activation and laterality")
    files(p, ("--bold", "corrected BOLD (func-preproc)"),
          ("--bold-sidecar", "its JSON sidecar (slice_time_ref, n_dummy)"),
          ("--bold-mask", "head mask of the BOLD reference"),
          ("--confounds", "confounds TSV (func-preproc)"), ("--events", "BIDS events.tsv"),
          ("--boldref", "BOLD reference"), ("--xfm", "ANTs rigid BOLD -> T1w (func-coreg)"),
          ("--t1w", "N4-corrected T1w"), ("--brain-mask", "T1w brain mask (through the SyN)"),
          ("--atlas", "atlas regions on the T1w grid (pipeline.templates.ATLAS_REGION_LABELS)"),
          ("--lesion-side", "the subject's lesion side JSON (pipeline.side)"),
          ("--out-design", "design matrix TSV"), ("--out-figure-design", "design figure (PNG)"),
          ("--out-m1", "M1 and lesion on the BOLD grid"), ("--out-metrics", "metrics JSON"),
          ("--out-zmap-t1w", "primary z-map resampled to the T1w"),
          ("--out-figure-zmap", "activation figure (PNG)"))
    add_schema_option(p, "func", "primary_contrast", required=True)
    p.add_argument("--lesion", help="lesion mask on the T1w grid (optional)")
    p.add_argument("--contrast", action="append", required=True,
                   help="NAME=nilearn contrast expression (config func.contrasts); repeatable")
    p.add_argument("--out-zmap", action="append", required=True,
                   help="NAME=path of the z-map of contrast NAME (BOLD grid); repeatable")
    add_schema_options(p, "func", "hrf_model", "high_pass_hz", "smoothing_fwhm_mm", "noise_model",
                       "z_threshold", "atlas_min_fraction", "lesion_min_fraction")
    add_schema_option(p, "func", "motion_regressors", type=str, choices=("6", "24"),
                      default=str(schema_default_func("motion_regressors")))
    add_schema_option(p, "func", "spike_regressors")
    add_schema_option(p, "func", "m1_fwe_alpha", flag="--fwe-alpha")
    add_schema_option(p, "qc", "bold_fd_threshold_mm", flag="--fd-threshold-mm")
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap laterality index")
    add_threads_option(p)


def schema_default_func(key):
    from pipeline.config import schema_default

    return schema_default("func", key)
