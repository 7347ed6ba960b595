# DWI stream: input checks and acquisition metrics (dwi_qc); denoising, Gibbs
# removal, motion / eddy-current correction with b-vector rotation and tensor
# fit (dwi_preproc); DWI -> T1w registration and CST / PLIC / NAWM / lesion
# FA and MD, ipsi- and contralesional (dwi_regions).

from pipeline.dwi.methods import preproc_methods, tensor_methods

DWI_METRICS = deriv("dwi", "metrics", ".json", desc="dwiqc")
DWI_PREPROC = deriv("dwi", "dwi", ".nii.gz", space="dwi", desc="preproc")
DWI_B0 = deriv("dwi", "dwiref", ".nii.gz", space="dwi", desc="b0")
DWI_MASK = deriv("dwi", "mask", ".nii.gz", space="dwi", desc="brain")
DWI_FA = deriv("dwi", "dwimap", ".nii.gz", space="dwi", desc="fa")
DWI_MD = deriv("dwi", "dwimap", ".nii.gz", space="dwi", desc="md")
DWI_AD = deriv("dwi", "dwimap", ".nii.gz", space="dwi", desc="ad")
DWI_RD = deriv("dwi", "dwimap", ".nii.gz", space="dwi", desc="rd")
DWI_V1 = deriv("dwi", "dwimap", ".nii.gz", space="dwi", desc="v1")
DWI_RESIDUAL = deriv("dwi", "dwimap", ".nii.gz", space="dwi", desc="residual")
DWI_FIELD = deriv("dwi", "dwimap", ".nii.gz", space="dwi", desc="sdcdisplacement")
DWI_MOTION = deriv("dwi", "timeseries", ".tsv", desc="motion")
DWI_PREPROC_METRICS = deriv("dwi", "metrics", ".json", desc="dwipreproc")
DWI_FIG_COLOUR_FA = deriv("figures", "dwi", ".png", desc="colourfa")
DWI_FIG_MOTION = deriv("figures", "dwi", ".png", desc="motion")
DWI_FIG_RESIDUAL = deriv("figures", "dwi", ".png", desc="residual")
DWI_FIG_SDC = deriv("figures", "dwi", ".png", desc="sdc")
XFM_DWI_TO_T1W = deriv("dwi", "xfm", ".mat", from_="dwi", to="T1w", mode="image")
DWI_REGIONS = deriv("dwi", "dseg", ".nii.gz", space="dwi", desc="regions")
DWI_REGION_METRICS = deriv("dwi", "metrics", ".json", desc="dwiregions")
DWI_FIG_REGIONS = deriv("figures", "dwi", ".png", desc="regions")

register_metrics("dwi", "dwi", DWI_METRICS)
register_metrics("dwi", "dwi", DWI_PREPROC_METRICS)
register_metrics("dwi", "dwi", DWI_REGION_METRICS)
# colour FA on the T1w grid in the lesion review page (qc.smk)
register_review_layer(
    modality="dwi", files={"fa": DWI_FA, "v1": DWI_V1, "xfm_dwi_to_t1w": XFM_DWI_TO_T1W}
)
register_reportlet(
    modality="dwi",
    step="sdc",
    title="DWI distortion correction and brain mask",
    figure=DWI_FIG_SDC,
    metrics=DWI_PREPROC_METRICS,
    caption="With a reverse phase-encoding b=0: the two b=0 images overlaid (red main, cyan "
    "reverse; grey where they agree) as acquired and after unwarping, and the estimated "
    "displacement along phase encoding; the title says when no reverse b=0 existed. Last "
    "row: the corrected b=0 with the brain mask (yellow), which should hold the whole brain.",
    methods=preproc_methods(config["dwi"]),
)
register_reportlet(
    modality="dwi",
    step="motion",
    title="DWI motion and outliers",
    figure=DWI_FIG_MOTION,
    metrics=DWI_PREPROC_METRICS,
    caption="Per-volume translation, rotation and mean brain displacement from the "
    "registration of each volume to the mean b=0; bars: outlier slices per volume.",
    methods=preproc_methods(config["dwi"]),
)
register_reportlet(
    modality="dwi",
    step="colourfa",
    title="Colour FA",
    figure=DWI_FIG_COLOUR_FA,
    metrics=DWI_PREPROC_METRICS,
    caption="Principal diffusion direction weighted by FA (red left-right, green "
    "anterior-posterior, blue superior-inferior); the CST should be blue.",
    methods=tensor_methods(config["dwi"]),
)
register_reportlet(
    modality="dwi",
    step="residual",
    title="Tensor-fit residual",
    figure=DWI_FIG_RESIDUAL,
    metrics=DWI_PREPROC_METRICS,
    caption="RMS residual of the tensor fit (% of S0); bright bands are artefacts or "
    "uncorrected motion.",
)
register_reportlet(
    modality="dwi",
    step="regions",
    title="DWI regions and registration",
    figure=DWI_FIG_REGIONS,
    metrics=DWI_REGION_METRICS,
    caption="FA with the ipsilesional (red) and contralesional (green) CST, the lesion "
    "(blue) and the T1w brain mask brought to DWI space (yellow).",
    methods="Mean b=0 registered rigidly to the T1w (ANTs, Mattes MI); atlas, tissue and "
    "lesion masks carried to DWI space as fractions. CST: white matter (fraction >= 0.9), "
    "Juelich CST, lesion (dilated) excluded; PLIC: 25-37 % of the CST height; NAWM: white "
    "matter outside the CST and the dilated lesion. Medians over voxels.",
)


rule dwi_qc:
    input:
        dwi=raw("dwi"),
        bval=raw("bval"),
        bvec=raw("bvec"),
    output:
        metrics=DWI_METRICS,
    log:
        per_session("logs", "dwi_qc"),
    benchmark:
        per_session("benchmarks", "dwi_qc")
    container:
        CONTAINER
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        on_error=ON_ERROR,
    shell:
        "resstore dwi-qc --dwi {input.dwi} --bval {input.bval} --bvec {input.bvec}"
        " --out-metrics {output.metrics} --log {log} {params.on_error}"


rule dwi_preproc:
    input:
        dwi=raw("dwi"),
        bval=raw("bval"),
        bvec=raw("bvec"),
        reverse_pe=optional_raw("dwi_reverse"),
    output:
        preproc=DWI_PREPROC,
        b0=DWI_B0,
        mask=DWI_MASK,
        fa=DWI_FA,
        md=DWI_MD,
        ad=DWI_AD,
        rd=DWI_RD,
        v1=DWI_V1,
        residual=DWI_RESIDUAL,
        field=DWI_FIELD,
        motion=DWI_MOTION,
        metrics=DWI_PREPROC_METRICS,
        colour_fa=DWI_FIG_COLOUR_FA,
        motion_figure=DWI_FIG_MOTION,
        residual_figure=DWI_FIG_RESIDUAL,
        sdc_figure=DWI_FIG_SDC,
    log:
        per_session("logs", "dwi_preproc"),
    benchmark:
        per_session("benchmarks", "dwi_preproc")
    container:
        CONTAINER
    threads: THREADS
    resources:
        mem_mb=mem_mb_of("dwi_preproc"),
        runtime=runtime_of("dwi_preproc"),
    params:
        on_error=ON_ERROR,
        denoise=config["dwi"]["denoise"],
        patch_radius=config["dwi"]["denoise_patch_radius"],
        rician="yes" if config["dwi"]["rician_correction"] else "no",
        gibbs="yes" if config["dwi"]["gibbs"] else "no",
        motion=config["dwi"]["motion_correction"],
        iterations=" ".join(str(i) for i in config["dwi"]["motion_iterations"]),
        shrink=" ".join(str(i) for i in config["dwi"]["motion_shrink_factors"]),
        fit=config["dwi"]["tensor_fit"],
        slice_z=config["dwi"]["outlier_slice_z"],
        displacement=config["dwi"]["outlier_displacement_mm"],
        replace="yes" if config["dwi"]["replace_outlier_slices"] else "no",
        rounds=config["dwi"]["motion_rounds"],
        anchor_step=config["dwi"]["anchor_max_b_step"],
        dti_max_b=config["dwi"]["dti_max_b"],
        sdc="yes" if config["dwi"]["susceptibility_correction"] else "no",
        reverse_pe=lambda wildcards, input: (
            f"--reverse-pe {input.reverse_pe}" if input.reverse_pe else ""
        ),
    shell:
        "resstore dwi-preproc --dwi {input.dwi} --bval {input.bval} --bvec {input.bvec}"
        " --out-preproc {output.preproc} --out-b0 {output.b0} --out-mask {output.mask}"
        " --out-fa {output.fa} --out-md {output.md} --out-ad {output.ad} --out-rd {output.rd}"
        " --out-v1 {output.v1} --out-residual {output.residual} --out-motion {output.motion}"
        " --out-metrics {output.metrics} --out-figure-colour-fa {output.colour_fa}"
        " --out-figure-motion {output.motion_figure}"
        " --out-figure-residual {output.residual_figure}"
        " --out-field {output.field} --out-figure-sdc {output.sdc_figure} {params.reverse_pe}"
        " --susceptibility-correction {params.sdc}"
        " --denoise {params.denoise} --denoise-patch-radius {params.patch_radius}"
        " --rician-correction {params.rician} --gibbs {params.gibbs}"
        " --motion-correction {params.motion}"
        " --motion-iterations {params.iterations} --motion-shrink-factors {params.shrink}"
        " --tensor-fit {params.fit} --outlier-slice-z {params.slice_z}"
        " --outlier-displacement-mm {params.displacement}"
        " --replace-outlier-slices {params.replace} --motion-rounds {params.rounds}"
        " --anchor-max-b-step {params.anchor_step} --dti-max-b {params.dti_max_b}"
        " --threads {threads} --log {log} {params.on_error}"


rule dwi_regions:
    input:
        fa=DWI_FA,
        md=DWI_MD,
        b0=DWI_B0,
        mask=DWI_MASK,
        t1w=T1W_PREPROC,
        t1w_mask=BRAIN_MASK,
        atlas=ATLAS_T1W,
        tissue=TISSUE_DSEG,
        lesion=LESION_MASK,
        lesion_side=LESION_SIDE,
    output:
        xfm=XFM_DWI_TO_T1W,
        metrics=DWI_REGION_METRICS,
        dseg=DWI_REGIONS,
        figure=DWI_FIG_REGIONS,
    log:
        per_session("logs", "dwi_regions"),
    benchmark:
        per_session("benchmarks", "dwi_regions")
    container:
        CONTAINER
    threads: THREADS
    resources:
        mem_mb=mem_mb_of("dwi_regions"),
        runtime=runtime_of("dwi_regions"),
    params:
        on_error=ON_ERROR,
        wm=config["dwi"]["wm_fraction_min"],
        region=config["dwi"]["region_fraction_min"],
        dilation=config["dwi"]["lesion_dilation_mm"],
        statistic=config["dwi"]["region_statistic"],
    shell:
        "resstore dwi-regions --fa {input.fa} --md {input.md} --b0 {input.b0}"
        " --mask {input.mask} --t1w {input.t1w} --t1w-mask {input.t1w_mask}"
        " --atlas {input.atlas} --tissue {input.tissue} --lesion {input.lesion}"
        " --lesion-side {input.lesion_side} --out-xfm {output.xfm}"
        " --out-metrics {output.metrics} --out-dseg {output.dseg} --out-figure {output.figure}"
        " --wm-fraction-min {params.wm} --region-fraction-min {params.region}"
        " --lesion-dilation-mm {params.dilation} --statistic {params.statistic}"
        " --threads {threads} --log {log} {params.on_error}"
