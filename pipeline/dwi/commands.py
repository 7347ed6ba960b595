"""``resstore dwi-preproc`` and ``resstore dwi-regions``: file I/O around
:mod:`pipeline.dwi.stream` and :mod:`pipeline.dwi.regions`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _cmd_dwi_preproc(args) -> None:
    from pipeline.antsio import set_threads

    set_threads(args.threads)
    import nibabel as nib

    from pipeline.dwi import figures
    from pipeline.dwi.gradients import load_dwi, load_reverse_b0, voxel_to_fsl
    from pipeline.dwi.stream import PreprocOptions, motion_table, preprocess
    from pipeline.io import _atomic_write, save_image, write_json

    dwi = load_dwi(args.dwi, args.bval, args.bvec)
    if args.reverse_pe and args.susceptibility_correction == "yes":
        dwi = load_reverse_b0(dwi, args.dwi, args.reverse_pe)
    options = PreprocOptions(
        denoise=args.denoise, denoise_patch_radius=args.denoise_patch_radius,
        rician_correction=args.rician_correction == "yes", gibbs=args.gibbs == "yes",
        motion_correction=args.motion_correction, motion_rounds=args.motion_rounds,
        anchor_max_b_step=args.anchor_max_b_step,
        motion_iterations=tuple(args.motion_iterations),
        motion_shrink_factors=tuple(args.motion_shrink_factors), tensor_fit=args.tensor_fit,
        outlier_slice_z=args.outlier_slice_z, outlier_displacement_mm=args.outlier_displacement_mm,
        replace_outlier_slices=args.replace_outlier_slices == "yes", dti_max_b=args.dti_max_b,
        susceptibility_correction=args.susceptibility_correction == "yes", threads=args.threads)
    res = preprocess(dwi, options)
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options).items()}
    src = [args.dwi, args.bval, args.bvec] + ([args.reverse_pe] if args.reverse_pe else [])
    aff = res.affine
    if args.out_preproc:
        save_image(nib.Nifti1Image(res.data, aff), args.out_preproc, sources=src, parameters=params,
                   description="denoised, Gibbs-corrected, motion/eddy-corrected DWI",
                   dtype="float32")
        stem = str(args.out_preproc).removesuffix(".nii.gz")
        _atomic_write(Path(stem + ".bval"),
                      lambda tmp: np.savetxt(tmp, res.bvals[None, :], fmt="%g"))
        _atomic_write(Path(stem + ".bvec"),
                      lambda tmp: np.savetxt(tmp, voxel_to_fsl(res.bvecs, aff).T, fmt="%.6f"))
    maps = {"b0": (args.out_b0, res.b0, "mean b=0 after motion correction", "float32"),
            "mask": (args.out_mask, res.mask.astype(np.uint8), "DWI brain mask", "uint8"),
            "fa": (args.out_fa, res.tensor.fa, "fractional anisotropy", "float32"),
            "md": (args.out_md, res.tensor.md, "mean diffusivity (mm^2/s)", "float32"),
            "ad": (args.out_ad, res.tensor.ad, "axial diffusivity (mm^2/s)", "float32"),
            "rd": (args.out_rd, res.tensor.rd, "radial diffusivity (mm^2/s)", "float32"),
            "v1": (args.out_v1, res.tensor.v1, "principal eigenvector (voxel axes)", "float32"),
            "residual": (args.out_residual, res.tensor.residual,
                         "RMS tensor-fit residual (% of S0)", "float32"),
            "field": (args.out_field, res.sdc.field_mm if res.sdc is not None
                      else np.zeros(res.mask.shape, np.float32),
                      "susceptibility displacement of the DWI (mm along the phase-encoding "
                      f"axis {'ijk'[dwi.pe_axis]}) at each corrected voxel; "
                      + ("from the reverse phase-encoding b=0" if res.sdc is not None
                         else "zero: not corrected (no reverse phase-encoding b=0)"), "float32")}
    shells = f"tensor on b = {res.metrics['dwi_tensor_shells']}"
    if res.metrics["dwi_tensor_high_b_only"]:
        shells += f" -- WARNING: every shell above dwi.dti_max_b = {options.dti_max_b:g}"
    for key, (path, array, description, dtype) in maps.items():
        if key in ("fa", "md", "ad", "rd", "v1", "residual"):
            description = f"{description}; {shells}"
        save_image(nib.Nifti1Image(array, aff), path, sources=src, parameters=params,
                   description=description, dtype=dtype)
    table = motion_table(res)
    _atomic_write(Path(args.out_motion),
                  lambda tmp: table.to_csv(tmp, sep="\t", index=False, float_format="%.5f"))
    write_json(args.out_metrics, res.metrics)
    name = Path(args.dwi).name.removesuffix(".nii.gz")
    figures.colour_fa(res.tensor.fa, res.tensor.v1, aff, args.out_figure_colour_fa,
                      title=f"{name}: {shells};")
    figures.motion_plot(res.motion, res.displacement, res.bvals, res.outliers,
                        args.out_figure_motion, title=f"{name}: motion and outliers")
    figures.distortion(res, dwi.pe_axis, args.out_figure_sdc, title=name)
    figures.map_mosaic(res.tensor.residual * res.mask, aff, args.out_figure_residual,
                       vmax=max(float(np.percentile(res.tensor.residual[res.mask], 99)), 1e-3),
                       label="residual (% of S0)", title=f"{name}: tensor-fit residual")


def _cmd_dwi_regions(args) -> None:
    from pipeline.antsio import set_threads

    set_threads(args.threads)
    import shutil

    import nibabel as nib

    from pipeline.dwi import regions
    from pipeline.io import save_image, write_json
    from pipeline.orientation import check_same_grid, read_image
    from pipeline.qc.figures import mosaic
    from pipeline.side import read_lesion_side

    fa_img = read_image(args.fa, what="FA map")
    fa = fa_img.get_fdata(dtype=np.float32)
    md = read_image(args.md, what="MD map").get_fdata(dtype=np.float32)
    b0 = read_image(args.b0, what="b=0 reference")
    dwi_mask_img = read_image(args.mask, what="DWI brain mask")
    check_same_grid(fa_img, md=nib.Nifti1Image(md, fa_img.affine), b0=b0, mask=dwi_mask_img)
    dwi_mask = np.asarray(dwi_mask_img.dataobj) > 0
    t1w = read_image(args.t1w, what="T1w")
    t1w_mask = read_image(args.t1w_mask, what="T1w brain mask")
    atlas = read_image(args.atlas, what="atlas dseg")
    tissue = read_image(args.tissue, what="tissue dseg")
    lesion = read_image(args.lesion, what="lesion mask") if args.lesion else None
    check_same_grid(t1w, brain_mask=t1w_mask, atlas=atlas, tissue=tissue, lesion=lesion)
    side = read_lesion_side(args.lesion_side)
    if not side.lateralised:
        log.warning("lesion side is %r: ipsi/contralesional metrics are not defined", side.side)
    matrix, transform = regions.register_dwi_to_t1w(b0, dwi_mask, t1w, t1w_mask)
    Path(args.out_xfm).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(transform, args.out_xfm)
    options = regions.RegionOptions(
        wm_fraction_min=args.wm_fraction_min, region_fraction_min=args.region_fraction_min,
        lesion_dilation_mm=args.lesion_dilation_mm)
    masks = regions.region_masks(dwi_mask=dwi_mask, dwi_affine=fa_img.affine, atlas=atlas,
                                 tissue=tissue, lesion=lesion, matrix=matrix, lesion_side=side,
                                 options=options)
    voxel_ml = float(np.prod(fa_img.header.get_zooms()[:3])) / 1000.0
    metrics = regions.regional_metrics(fa, md, masks, voxel_ml, statistic=args.statistic)
    t1_brain = regions.to_dwi_fraction(np.asarray(t1w_mask.dataobj) > 0, t1w_mask.affine, matrix,
                                       fa.shape, fa_img.affine) > 0.5
    inter = (t1_brain & dwi_mask).sum()
    metrics["dwi_t1w_brain_dice"] = float(2 * inter / max(t1_brain.sum() + dwi_mask.sum(), 1))
    write_json(args.out_metrics, metrics)
    labels = np.zeros(fa.shape, np.uint8)
    order = ("nawm", "cst_contralesional", "cst_ipsilesional", "lesion")
    for value, key in enumerate(order, start=1):
        if key in masks:
            labels[masks[key]] = value
    save_image(nib.Nifti1Image(labels, fa_img.affine), args.out_dseg,
               sources=[args.fa, args.atlas, args.tissue, args.lesion or ""],
               parameters=vars(options) | {"labels": dict(enumerate(order, start=1)),
                                           "statistic": args.statistic,
                                           "lesion_side": side.side,
                                           "ipsilesional_hemisphere": side.ipsilesional},
               description="regions of the DWI metrics, on the DWI grid", dtype="uint8")
    contours = {k: nib.Nifti1Image(masks[k].astype(np.uint8), fa_img.affine)
                for k in ("cst_ipsilesional", "cst_contralesional", "lesion") if k in masks}
    contours["brain (T1w)"] = nib.Nifti1Image(t1_brain.astype(np.uint8), fa_img.affine)
    mosaic(fa_img, args.out_figure, contours=contours,
           title=f"{Path(args.fa).name}: CST, lesion, T1w brain (registration)")


def register(command) -> None:
    from pipeline.config import add_file_options as files
    from pipeline.config import add_schema_option, add_schema_options, add_threads_option

    def dwi(p, *keys):
        add_schema_options(p, "dwi", *keys)

    p = command("dwi-preproc", _cmd_dwi_preproc,
                "DWI denoising, motion/eddy correction, tensor fit and QC")
    files(p, ("--dwi", "raw 4D DWI (any storage orientation)"), ("--bval", "its .bval"),
          ("--bvec", "its .bvec (image axes, as dcm2niix writes them)"),
          ("--out-b0", "mean corrected b=0"), ("--out-mask", "diffusion brain mask"),
          ("--out-fa", "FA map"), ("--out-md", "MD map (mm2/s)"), ("--out-ad", "AD map"),
          ("--out-rd", "RD map"), ("--out-v1", "principal eigenvector map"),
          ("--out-residual", "per-volume tensor-fit residual map"),
          ("--out-motion", "per-volume motion TSV"), ("--out-metrics", "metrics JSON"),
          ("--out-figure-colour-fa", "colour-FA figure (PNG)"),
          ("--out-figure-motion", "motion figure (PNG)"),
          ("--out-figure-residual", "residual figure (PNG)"),
          ("--out-field", "susceptibility displacement map (mm; zero when not corrected)"),
          ("--out-figure-sdc", "distortion-correction and brain-mask figure (PNG)"))
    p.add_argument("--out-preproc", help="preprocessed 4D DWI (+ .bval/.bvec beside it)")
    p.add_argument("--reverse-pe", help="reverse phase-encoding b=0 (fmap/*_epi or the other "
                   "DWI series of a dir- pair) for the susceptibility correction")
    dwi(p, "denoise", "denoise_patch_radius", "rician_correction", "gibbs", "motion_correction",
        "motion_iterations", "motion_shrink_factors", "tensor_fit", "outlier_slice_z",
        "outlier_displacement_mm", "replace_outlier_slices", "dti_max_b", "motion_rounds",
        "anchor_max_b_step", "susceptibility_correction")
    add_threads_option(p)

    p = command("dwi-regions", _cmd_dwi_regions,
                "DWI -> T1w registration; CST, PLIC, NAWM and lesion FA/MD")
    files(p, ("--fa", "FA map (dwi-preproc)"), ("--md", "MD map (dwi-preproc)"),
          ("--b0", "mean b=0 (dwi-preproc)"), ("--mask", "diffusion brain mask"),
          ("--t1w", "N4-corrected T1w"), ("--t1w-mask", "T1w brain mask (through the SyN)"),
          ("--atlas", "atlas regions on the T1w grid"), ("--tissue", "tissue labels (dseg)"),
          ("--lesion-side", "the subject's lesion side JSON (pipeline.side)"),
          ("--out-xfm", "ANTs DWI -> T1w transform"), ("--out-metrics", "metrics JSON"),
          ("--out-dseg", "regions on the DWI grid"), ("--out-figure", "regions figure (PNG)"))
    p.add_argument("--lesion", help="T1w-space lesion mask")
    dwi(p, "wm_fraction_min", "region_fraction_min", "lesion_dilation_mm")
    add_schema_option(p, "dwi", "region_statistic", flag="--statistic")
    add_threads_option(p)
