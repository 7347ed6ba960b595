# Lesion stream, second part: corticospinal-tract lesion load, MNI centroid and
# volume change from baseline. It needs the lesion-masked SyN (anat_syn.smk:
# ATLAS_T1W, XFM_MNI_TO_T1W_SYN): there is no other path, so a missing input
# fails the job with a named error instead of switching method. Science:
# pipeline/lesion/run.py (lesion_load).

LESION_LOAD_METRICS = deriv("anat", "metrics", ".json", desc="lesionload")
LESION_LOAD_FIGURE = deriv("figures", "T1w", ".png", desc="cstload")

register_metrics("lesion", "lesion", LESION_LOAD_METRICS)
register_reportlet(
    modality="lesion",
    step="cstload",
    title="Corticospinal tract lesion load",
    figure=LESION_LOAD_FIGURE,
    metrics=LESION_LOAD_METRICS,
    caption="Lesion (red) with the ipsilesional (blue) and contralesional (green) "
    "corticospinal tracts (Juelich atlas, probability > 25 %, through the lesion-masked SyN) "
    "on the T1w.",
    methods="Overlap of the lesion with the ipsilesional CST in mL and as a fraction of the "
    "tract, and the slice-weighted load of Zhu et al. (2010, Stroke 41:910) over 1 mm "
    "template axial slices (CST voxels mapped through the SyN).",
)


rule lesion_load:
    input:
        mask=LESION_MASK,
        t1w=T1W_PREPROC,
        side=LESION_SIDE,
        metrics=LESION_METRICS,
        baseline=LESION_INPUTS.session_path(LESION_METRICS, "baseline"),
        atlas=ATLAS_T1W,
        xfm_syn=XFM_MNI_TO_T1W_SYN,
    output:
        metrics=LESION_LOAD_METRICS,
        figure=LESION_LOAD_FIGURE,
    log:
        per_session("logs", "lesion_load"),
    benchmark:
        per_session("benchmarks", "lesion_load")
    container:
        CONTAINER
    threads: THREADS
    resources:
        mem_mb=mem_mb_of("lesion_load"),
        runtime=runtime_of("lesion_load"),
    params:
        on_error=ON_ERROR,
        baseline=LESION_INPUTS.option("--baseline-metrics", "baseline"),
        is_baseline=lambda wildcards: (
            "--is-baseline" if wildcards.session == config["baseline_session"] else ""
        ),
        max_growth=config["lesion"]["max_growth"],
    shell:
        "resstore lesion-load --lesion-mask {input.mask} --t1w {input.t1w}"
        " --side {input.side} --metrics {input.metrics} --atlas {input.atlas}"
        " --xfm-syn {input.xfm_syn} {params.baseline} {params.is_baseline}"
        " --max-growth {params.max_growth}"
        " --out-metrics {output.metrics} --out-figure {output.figure} --threads {threads}"
        " --log {log} {params.on_error}"
