# Anatomy, second part: lesion-masked (and filled) SyN of MNI152NLin6Asym to the T1w
# (atlases come back; follow-up visits go through their baseline), template brain
# mask + Atropos tissue classes with a lesion class, cortical thickness (Laplace or
# DiReCT) and regional values. Inputs: anat_affine.smk (T1w, brain mask) and the
# lesion stream (LESION_MASK, LESION_SIDE). Science: pipeline/anat/.

from pipeline.anat.thickness import thickness_methods

ANAT_DK_T1W = deriv("anat", "dseg", ".nii.gz", space="T1w", desc="dk")
ANAT_REG_METRICS = deriv("anat", "metrics", ".json", desc="registration")
ANAT_REG_FIGURE = deriv("figures", "T1w", ".png", desc="registration")

TISSUE_PROBSEG = deriv("anat", "probseg", ".nii.gz", space="T1w", desc="tissue")
ANAT_SEG_METRICS = deriv("anat", "metrics", ".json", desc="segmentation")
ANAT_SEG_FIGURE = deriv("figures", "T1w", ".png", desc="segmentation")

THICKNESS_MAP = deriv(
    "anat", "thickness", ".nii.gz", space="T1w", desc=config["anat"]["thickness_method"]
)
THICKNESS_TABLE = deriv("anat", "thickness", ".tsv", space="T1w", desc="dk")
ANAT_THICKNESS_METRICS = deriv("anat", "metrics", ".json", desc="thickness")
ANAT_THICKNESS_FIGURE = deriv("figures", "T1w", ".png", desc="thickness")

for _metrics in (ANAT_REG_METRICS, ANAT_SEG_METRICS, ANAT_THICKNESS_METRICS):
    register_metrics("anat", "T1w", _metrics)

register_reportlet(
    modality="T1w",
    step="registration",
    title="Registration to MNI152",
    figure=ANAT_REG_FIGURE,
    metrics=ANAT_REG_METRICS,
    caption="Template brain outline (red), Juelich M1 (green) and CST (blue) brought to the T1w.",
    methods="Affine + SyN (ANTs, Mattes MI) of the FSL MNI152 brain (MNI152NLin6Asym) to the "
    "skull-stripped T1w, the lesion excluded from the metric (cost-function masking). "
    "Follow-up visits are registered rigidly to the baseline and reuse its SyN, so both "
    "visits get the same regions.",
)
register_reportlet(
    modality="T1w",
    step="segmentation",
    title="Tissue classes",
    figure=ANAT_SEG_FIGURE,
    metrics=ANAT_SEG_METRICS,
    caption="CSF (blue), GM (green), WM (yellow) and lesion (red).",
    methods="Template brain mask through the SyN warp; Atropos 3-class EM with MNI152 2009a "
    "priors (weight 0.25) and MRF smoothing; the lesion is excluded from the EM and labelled "
    "as its own class. Volumes are sums of posterior probabilities (mL).",
)
register_reportlet(
    modality="T1w",
    step="thickness",
    title="Cortical thickness",
    figure=ANAT_THICKNESS_FIGURE,
    metrics=ANAT_THICKNESS_METRICS,
    caption="Cortical thickness (mm); lesion voxels excluded.",
    methods=thickness_methods(config["anat"]),
)


rule anat_register:
    input:
        unpack(ANAT_INPUTS.baseline_files),
        preproc=T1W_PREPROC,
        mask=BRAIN_MASK_AFFINE,
        lesion=LESION_MASK,
    output:
        mni_to_t1w=XFM_MNI_TO_T1W_SYN,
        t1w_to_mni=XFM_T1W_TO_MNI_SYN,
        atlas=ATLAS_T1W,
        dk=ANAT_DK_T1W,
        metrics=ANAT_REG_METRICS,
        figure=ANAT_REG_FIGURE,
    log:
        per_session("logs", "anat_register"),
    benchmark:
        per_session("benchmarks", "anat_register")
    container:
        CONTAINER
    threads: THREADS
    resources:
        mem_mb=mem_mb_of("anat_register"),
        runtime=runtime_of("anat_register"),
    params:
        on_error=ON_ERROR,
        registration_voxel_mm=config["anat"]["registration_voxel_mm"],
        mask_dilation_mm=config["anat"]["template_mask_dilation_mm"],
        syn_iterations=" ".join(str(i) for i in config["anat"]["syn_iterations"]),
        lesion_fill=config["anat"]["lesion_fill"],
        optional=ANAT_INPUTS.options(
            baseline_preproc="baseline-preproc",
            baseline_brain_mask="baseline-mask",
            baseline_mni_to_t1w="baseline-mni-to-t1w",
            baseline_t1w_to_mni="baseline-t1w-to-mni",
        ),
    shell:
        "resstore anat-register --t1w-preproc {input.preproc} --brain-mask {input.mask}"
        " --out-mni-to-t1w {output.mni_to_t1w} --out-t1w-to-mni {output.t1w_to_mni}"
        " --out-atlas {output.atlas} --out-dk {output.dk} --out-metrics {output.metrics}"
        " --out-figure {output.figure} --threads {threads}"
        " --registration-voxel-mm {params.registration_voxel_mm}"
        " --mask-dilation-mm {params.mask_dilation_mm}"
        " --syn-iterations {params.syn_iterations} --lesion-fill {params.lesion_fill}"
        " --lesion-mask {input.lesion} {params.optional} --log {log} {params.on_error}"


rule anat_segment:
    input:
        preproc=T1W_PREPROC,
        mni_to_t1w=XFM_MNI_TO_T1W_SYN,
        lesion=LESION_MASK,
    output:
        mask=BRAIN_MASK,
        dseg=TISSUE_DSEG,
        probseg=TISSUE_PROBSEG,
        metrics=ANAT_SEG_METRICS,
        figure=ANAT_SEG_FIGURE,
    log:
        per_session("logs", "anat_segment"),
    benchmark:
        per_session("benchmarks", "anat_segment")
    container:
        CONTAINER
    threads: THREADS
    resources:
        mem_mb=mem_mb_of("anat_segment"),
        runtime=runtime_of("anat_segment"),
    params:
        on_error=ON_ERROR,
        prior_weight=config["anat"]["prior_weight"],
        mrf_weight=config["anat"]["mrf_weight"],
        pv_band=config["anat"]["partial_volume_band_mm"],
    shell:
        "resstore anat-segment --t1w-preproc {input.preproc} --mni-to-t1w {input.mni_to_t1w}"
        " --out-mask {output.mask} --out-dseg {output.dseg} --out-probseg {output.probseg}"
        " --out-metrics {output.metrics} --out-figure {output.figure} --threads {threads}"
        " --prior-weight {params.prior_weight} --mrf-weight {params.mrf_weight}"
        " --partial-volume-band-mm {params.pv_band}"
        " --lesion-mask {input.lesion} --log {log} {params.on_error}"


rule anat_thickness:
    input:
        preproc=T1W_PREPROC,
        dseg=TISSUE_DSEG,
        probseg=TISSUE_PROBSEG,
        atlas=ATLAS_T1W,
        dk=ANAT_DK_T1W,
        side=LESION_SIDE,
    output:
        thickness=THICKNESS_MAP,
        table=THICKNESS_TABLE,
        metrics=ANAT_THICKNESS_METRICS,
        figure=ANAT_THICKNESS_FIGURE,
    log:
        per_session("logs", "anat_thickness"),
    benchmark:
        per_session("benchmarks", "anat_thickness")
    container:
        CONTAINER
    threads: THREADS
    resources:
        mem_mb=mem_mb_of("anat_thickness"),
        runtime=runtime_of("anat_thickness"),
    params:
        on_error=ON_ERROR,
        method=config["anat"]["thickness_method"],
        grid_mm=config["anat"]["thickness_grid_mm"],
        jump_mm=config["anat"]["thickness_sulcal_jump_mm"],
        voxel_mm=config["anat"]["thickness_voxel_mm"],
        iterations=config["anat"]["thickness_iterations"],
    shell:
        "resstore anat-thickness --t1w-preproc {input.preproc} --dseg {input.dseg}"
        " --probseg {input.probseg} --atlas {input.atlas} --dk {input.dk}"
        " --out-thickness {output.thickness} --out-table {output.table}"
        " --out-metrics {output.metrics} --out-figure {output.figure} --threads {threads}"
        " --method {params.method} --grid-mm {params.grid_mm} --sulcal-jump-mm {params.jump_mm}"
        " --voxel-mm {params.voxel_mm} --iterations {params.iterations}"
        " --lesion-side {input.side} --log {log} {params.on_error}"
