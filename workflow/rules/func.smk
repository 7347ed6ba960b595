# Motor-task fMRI stream: input checks, motion and slice-timing correction,
# BOLD -> T1w registration, first-level GLM, M1 activation and laterality.

FUNC = config["func"]
FUNC_CONTRASTS = FUNC["contrasts"]
FUNC_CONTRAST_ARGS = " ".join(
    f"--contrast '{name}={expr}'" for name, expr in FUNC_CONTRASTS.items()
)

BOLD_PREPROC = deriv("func", "bold", ".nii.gz", task=TASK, space="bold", desc="preproc")
# its sidecar carries slice_time_ref and n_dummy to the GLM
BOLD_PREPROC_SIDECAR = deriv("func", "bold", ".json", task=TASK, space="bold", desc="preproc")
BOLD_REF = deriv("func", "boldref", ".nii.gz", task=TASK, space="bold")
BOLD_HEAD_MASK = deriv("func", "mask", ".nii.gz", task=TASK, space="bold", desc="head")
BOLD_CONFOUNDS = deriv("func", "timeseries", ".tsv", task=TASK, desc="confounds")
BOLD_METRICS = deriv("func", "metrics", ".json", task=TASK, desc="preproc")
BOLD_FIG_MOTION = deriv("figures", "bold", ".png", task=TASK, desc="motion")
BOLD_FIG_TSNR = deriv("figures", "bold", ".png", task=TASK, desc="tsnr")
XFM_BOLD_TO_T1W = deriv("func", "xfm", ".mat", task=TASK, from_="bold", to="T1w", mode="image")
BOLD_COREG_METRICS = deriv("func", "metrics", ".json", task=TASK, desc="coreg")
BOLD_FIG_COREG = deriv("figures", "bold", ".png", task=TASK, desc="coreg")
BOLD_ZMAP = deriv("func", "zmap", ".nii.gz", task=TASK, space="bold", desc="{contrast}")
BOLD_ZMAP_T1W = deriv(
    "func", "zmap", ".nii.gz", task=TASK, space="T1w", desc=FUNC["primary_contrast"]
)
BOLD_DESIGN = deriv("func", "design", ".tsv", task=TASK)
BOLD_M1 = deriv("func", "dseg", ".nii.gz", task=TASK, space="bold", desc="m1")
BOLD_ACTIVATION_METRICS = deriv("func", "metrics", ".json", task=TASK, desc="activation")
BOLD_FIG_DESIGN = deriv("figures", "bold", ".png", task=TASK, desc="design")
BOLD_FIG_ZMAP = deriv("figures", "bold", ".png", task=TASK, desc="zmap")

register_metrics("bold", "bold", BOLD_METRICS)
register_review_layer(
    modality="bold", files={"zmap": BOLD_ZMAP_T1W}, options=f"--z-threshold {FUNC['z_threshold']}"
)
register_metrics("bold", "bold", BOLD_ACTIVATION_METRICS)
register_reportlet(
    modality="bold",
    step="motion",
    title="Head motion, FD, DVARS and carpet plot",
    figure=BOLD_FIG_MOTION,
    metrics=BOLD_METRICS,
    caption="Motion parameters relative to the first volume after the dummy scans; FD "
    "(Power, 50 mm) with the outlier threshold (red); DVARS; voxel time series (z-scored).",
    methods="Rigid Gauss-Newton registration of every volume to the first kept volume "
    "(least squares, smoothed images, cubic B-splines); slice-timing correction to mid-TR; "
    "one cubic resampling.",
)
register_reportlet(
    modality="bold",
    step="tsnr",
    title="Temporal SNR",
    figure=BOLD_FIG_TSNR,
    caption="tSNR (mean / SD over time) of the corrected series on the BOLD reference.",
)
register_reportlet(
    modality="bold",
    step="coreg",
    title="BOLD to T1w registration",
    figure=BOLD_FIG_COREG,
    metrics=BOLD_COREG_METRICS,
    caption="Outline of the BOLD reference (red) and the T1w brain mask (green) on the T1w.",
    methods="ANTs rigid registration, Mattes mutual information, identity start.",
)
register_reportlet(
    modality="bold",
    step="design",
    title="GLM design matrix",
    figure=BOLD_FIG_DESIGN,
    caption="Task regressor(s), motion regressors, spike regressors, cosine drift, constant.",
)
register_reportlet(
    modality="bold",
    step="activation",
    title="Motor activation and laterality",
    figure=BOLD_FIG_ZMAP,
    metrics=BOLD_ACTIVATION_METRICS,
    caption="z-map of the primary contrast above the configured threshold on the T1w, with M1 "
    "(Juelich BA4a+BA4p) and the lesion.",
    methods="GLM from nilearn parts (SPM HRF, cosine drift, smoothing from the config); AR(p) "
    "prewhitening with the residual autocorrelation bias-corrected for the design and smoothed "
    "at 15 mm (Worsley et al. 2002, fmristat); "
    "M1 and lesion brought to the BOLD grid through the BOLD->T1w transform; lesion voxels "
    "excluded; LI = (I - C)/(I + C). Small-volume FWE threshold over bilateral M1 by Gaussian "
    "random field theory (Worsley et al. 1996) with the smoothness of the GLM residuals.",
)


rule func_preproc:
    input:
        bold=raw("bold"),
        events=raw("events"),
    output:
        bold=BOLD_PREPROC,
        sidecar=BOLD_PREPROC_SIDECAR,
        boldref=BOLD_REF,
        mask=BOLD_HEAD_MASK,
        confounds=BOLD_CONFOUNDS,
        metrics=BOLD_METRICS,
        figure_motion=BOLD_FIG_MOTION,
        figure_tsnr=BOLD_FIG_TSNR,
    log:
        per_session("logs", "func_preproc"),
    benchmark:
        per_session("benchmarks", "func_preproc")
    container:
        CONTAINER
    threads: 1
    resources:
        mem_mb=mem_mb_of("func_preproc"),
        runtime=runtime_of("func_preproc"),
    params:
        on_error=ON_ERROR,
        dummy=("" if FUNC["dummy_scans"] is None else f"--dummy-scans {FUNC['dummy_scans']}"),
        stc="yes" if FUNC["slice_timing_correction"] else "no",
        fd_threshold_mm=config["qc"]["bold_fd_threshold_mm"],
    shell:
        "resstore func-preproc --bold {input.bold} --events {input.events}"
        " --out-bold {output.bold} --out-boldref {output.boldref} --out-mask {output.mask}"
        " --out-confounds {output.confounds} --out-metrics {output.metrics}"
        " --out-figure-motion {output.figure_motion} --out-figure-tsnr {output.figure_tsnr}"
        " {params.dummy} --slice-timing-correction {params.stc}"
        " --fd-threshold-mm {params.fd_threshold_mm} --threads {threads} --log {log} {params.on_error}"


rule func_coreg:
    input:
        boldref=BOLD_REF,
        t1w=T1W_PREPROC,
        brain_mask=BRAIN_MASK,
    output:
        xfm=XFM_BOLD_TO_T1W,
        metrics=BOLD_COREG_METRICS,
        figure=BOLD_FIG_COREG,
    log:
        per_session("logs", "func_coreg"),
    benchmark:
        per_session("benchmarks", "func_coreg")
    container:
        CONTAINER
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        on_error=ON_ERROR,
        registration_voxel_mm=FUNC["registration_voxel_mm"],
    shell:
        "resstore func-coreg --boldref {input.boldref} --t1w {input.t1w}"
        " --brain-mask {input.brain_mask} --out-xfm {output.xfm} --out-metrics {output.metrics}"
        " --out-figure {output.figure} --registration-voxel-mm {params.registration_voxel_mm}"
        " --threads {threads} --log {log} {params.on_error}"


rule func_glm:
    input:
        bold=BOLD_PREPROC,
        bold_sidecar=BOLD_PREPROC_SIDECAR,
        bold_mask=BOLD_HEAD_MASK,
        boldref=BOLD_REF,
        confounds=BOLD_CONFOUNDS,
        events=raw("events"),
        xfm=XFM_BOLD_TO_T1W,
        t1w=T1W_PREPROC,
        brain_mask=BRAIN_MASK,
        atlas=ATLAS_T1W,
        lesion=LESION_MASK,
        lesion_side=LESION_SIDE,
    output:
        zmaps=expand(BOLD_ZMAP, contrast=list(FUNC_CONTRASTS), allow_missing=True),
        zmap_t1w=BOLD_ZMAP_T1W,
        design=BOLD_DESIGN,
        m1=BOLD_M1,
        metrics=BOLD_ACTIVATION_METRICS,
        figure_design=BOLD_FIG_DESIGN,
        figure_zmap=BOLD_FIG_ZMAP,
    log:
        per_session("logs", "func_glm"),
    benchmark:
        per_session("benchmarks", "func_glm")
    container:
        CONTAINER
    threads: 1
    resources:
        mem_mb=mem_mb_of("func_glm"),
        runtime=runtime_of("func_glm"),
    params:
        on_error=ON_ERROR,
        contrasts=lambda wildcards, output: FUNC_CONTRAST_ARGS
        + "".join(f" --out-zmap {name}={path}" for name, path in zip(FUNC_CONTRASTS, output.zmaps)),
        primary=FUNC["primary_contrast"],
        hrf=FUNC["hrf_model"],
        high_pass_hz=FUNC["high_pass_hz"],
        fwhm=FUNC["smoothing_fwhm_mm"],
        noise=FUNC["noise_model"],
        motion=FUNC["motion_regressors"],
        spikes="yes" if FUNC["spike_regressors"] else "no",
        fd_threshold_mm=config["qc"]["bold_fd_threshold_mm"],
        z_threshold=FUNC["z_threshold"],
        fwe_alpha=FUNC["m1_fwe_alpha"],
        atlas_min_fraction=FUNC["atlas_min_fraction"],
        lesion_min_fraction=FUNC["lesion_min_fraction"],
    shell:
        "resstore func-glm --bold {input.bold} --bold-sidecar {input.bold_sidecar}"
        " --bold-mask {input.bold_mask}"
        " --boldref {input.boldref} --confounds {input.confounds} --events {input.events}"
        " --xfm {input.xfm} --t1w {input.t1w} --brain-mask {input.brain_mask}"
        " --atlas {input.atlas} --lesion {input.lesion} --lesion-side {input.lesion_side}"
        " {params.contrasts} --primary-contrast {params.primary}"
        " --out-zmap-t1w {output.zmap_t1w} --out-design {output.design} --out-m1 {output.m1}"
        " --out-metrics {output.metrics} --out-figure-design {output.figure_design}"
        " --out-figure-zmap {output.figure_zmap} --hrf-model '{params.hrf}'"
        " --high-pass-hz {params.high_pass_hz} --smoothing-fwhm-mm {params.fwhm}"
        " --noise-model {params.noise} --motion-regressors {params.motion}"
        " --spike-regressors {params.spikes} --fd-threshold-mm {params.fd_threshold_mm}"
        " --z-threshold {params.z_threshold} --fwe-alpha {params.fwe_alpha}"
        " --atlas-min-fraction {params.atlas_min_fraction}"
        " --lesion-min-fraction {params.lesion_min_fraction} --threads {threads} --log {log} {params.on_error}"
