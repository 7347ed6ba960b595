# Anatomy, first part (T1w): N4 bias correction and the affine template brain mask.
# Its outputs (T1W_PREPROC, BRAIN_MASK_AFFINE, XFM_MNI_TO_T1W_AFFINE, in common.smk)
# feed the lesion stream, whose lesion mask then feeds the lesion-masked SyN
# (anat_syn.smk). Science: pipeline/anat/.

from pipeline.anat.smk_inputs import AnatInputs

ANAT_METRICS = deriv("anat", "metrics", ".json", desc="brainmask")
ANAT_FIGURE = deriv("figures", "T1w", ".png", desc="brainmask")

register_metrics("anat", "T1w", ANAT_METRICS)
register_reportlet(
    modality="T1w",
    step="brainmask",
    title="Brain mask",
    figure=ANAT_FIGURE,
    metrics=ANAT_METRICS,
    caption="Affine template brain mask (red) on the bias-corrected T1w.",
    methods="N4 bias-field correction (ANTs); the FSL MNI152 brain template is registered "
    "affinely (Mattes MI, metric restricted to the head eroded by 10 mm, minus a manual "
    "lesion mask when one is given) and its brain mask brought back to the T1w.",
)

ANAT_INPUTS = AnatInputs(
    rows=_ROWS,
    baseline=config["baseline_session"],
    sessions_with=sessions_with,
    expand=expand,
    paths=dict(
        preproc=T1W_PREPROC,
        brain_mask=BRAIN_MASK_AFFINE,
        mni_to_t1w=XFM_MNI_TO_T1W_SYN,
        t1w_to_mni=XFM_T1W_TO_MNI_SYN,
    ),
)


rule anat_brainmask:
    input:
        t1w=raw("t1w"),
        lesion=ANAT_INPUTS.manual_lesion,
    output:
        preproc=T1W_PREPROC,
        mask=BRAIN_MASK_AFFINE,
        xfm=XFM_MNI_TO_T1W_AFFINE,
        metrics=ANAT_METRICS,
        figure=ANAT_FIGURE,
    log:
        per_session("logs", "anat_brainmask"),
    benchmark:
        per_session("benchmarks", "anat_brainmask")
    container:
        CONTAINER
    threads: THREADS
    resources:
        mem_mb=mem_mb_of("anat_brainmask"),
        runtime=runtime_of("anat_brainmask"),
    params:
        on_error=ON_ERROR,
        registration_voxel_mm=config["anat"]["registration_voxel_mm"],
        n4_shrink_factor=config["anat"]["n4_shrink_factor"],
        max_voxel_mm=config["anat"]["max_voxel_mm"],
        manual_threshold=config["lesion"]["manual_threshold"],
        manual_labels=option_list("--manual-labels", config["lesion"]["manual_labels"]),
        optional=ANAT_INPUTS.options(lesion="lesion-mask"),
    shell:
        "resstore anat-preproc --t1w {input.t1w} --out-preproc {output.preproc}"
        " --out-mask {output.mask} --out-xfm {output.xfm} --out-metrics {output.metrics}"
        " --out-figure {output.figure} --threads {threads}"
        " --registration-voxel-mm {params.registration_voxel_mm}"
        " --n4-shrink-factor {params.n4_shrink_factor} --max-voxel-mm {params.max_voxel_mm}"
        " --manual-threshold {params.manual_threshold} {params.manual_labels}"
        " {params.optional} --log {log} {params.on_error}"
