# Anatomy stream: N4 bias correction and template-based brain mask.

T1W_PREPROC = deriv("anat", "T1w", ".nii.gz", desc="preproc")
BRAIN_MASK = deriv("anat", "mask", ".nii.gz", desc="brain")
XFM_MNI_TO_T1W = deriv("anat", "xfm", ".mat", from_="MNI152NLin6Asym", to="T1w",
                       mode="image", desc="affine")
ANAT_METRICS = deriv("anat", "metrics", ".json", desc="brainmask")
ANAT_FIGURE = deriv("figures", "T1w", ".png", desc="brainmask")

register_metrics("anat", "T1w", ANAT_METRICS)
register_reportlet(
    modality="T1w", step="brainmask", title="Brain mask", figure=ANAT_FIGURE,
    metrics=ANAT_METRICS,
    caption="Template brain mask (red) on the bias-corrected T1w.",
    methods="N4 bias-field correction (ANTs); the FSL MNI152 brain template is registered "
    "affinely (Mattes MI, metric restricted to the head eroded by 10 mm) and its brain "
    "mask brought back to the T1w.",
)


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
