# Anatomy stream: N4 bias correction and template-based brain mask.


rule anat_brainmask:
    input:
        t1w=raw("t1w"),
    output:
        preproc=T1W_PREPROC,
        mask=BRAIN_MASK,
        xfm=XFM_MNI_TO_T1W,
        metrics=ANAT_METRICS,
        figure=ANAT_FIGURE,
    params:
        registration_voxel_mm=config["anat"]["registration_voxel_mm"],
        n4_shrink_factor=config["anat"]["n4_shrink_factor"],
    container:
        CONTAINER
    log:
        per_session("logs", "anat_brainmask"),
    benchmark:
        per_session("benchmarks", "anat_brainmask")
    threads: THREADS
    resources:
        mem_mb=3000,
        runtime=20,
    shell:
        "resstore anat-brainmask --t1w {input.t1w} --out-preproc {output.preproc}"
        " --out-mask {output.mask} --out-xfm {output.xfm} --out-metrics {output.metrics}"
        " --out-figure {output.figure} --threads {threads}"
        " --registration-voxel-mm {params.registration_voxel_mm}"
        " --n4-shrink-factor {params.n4_shrink_factor} --log {log}"
