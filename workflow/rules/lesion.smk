# Lesion stream: FLAIR N4 + rigid registration to the T1w, automatic lesion
# segmentation (or the manual *_label-lesion_roi mask), volume, side and
# corticospinal-tract lesion load. Science: pipeline/lesion/.
#
# Produces the cross-stream LESION_MASK and LESION_METRICS (every session with a
# T1w; an empty mask with NA volumes when there is neither a FLAIR nor a manual
# mask) and LESION_SIDE (per subject, from the baseline lesion; participants.tsv
# lesion_side overrides). Inputs: anat_affine.smk only (N4 T1w, affine brain mask
# and template transform), so the lesion-masked SyN (anat_syn.smk) takes the mask.
# The CST lesion load, which needs that SyN, is in lesion_load.smk.

from pipeline.lesion.plausibility import SESSION_GATE_KEYS
from pipeline.lesion.smk_inputs import LesionInputs

LESION_FIGURE = deriv("figures", "FLAIR", ".png", desc="lesion")
LESION_CFG = config["lesion"]
PARTICIPANTS_TSV = os.path.join(config["bids_dir"], "participants.tsv")

register_metrics("lesion", "lesion", LESION_METRICS)
register_reportlet(
    modality="lesion",
    step="lesion",
    title="Lesion segmentation",
    figure=LESION_FIGURE,
    metrics=LESION_METRICS,
    caption="Lesion outline (red; yellow: manual mask or, when the manual mask is used, the "
    "automatic one) on the FLAIR registered to the T1w and on the T1w, slices through the lesion.",
    methods="FLAIR N4 bias correction and rigid registration to the T1w (Mattes mutual "
    "information). Unsupervised segmentation: a normal-tissue intensity model fitted in the "
    "less hyperintense hemisphere; FLAIR-hyperintense outliers (hysteresis, half-maximum "
    "edges, left-right asymmetry through the affine template registration); for chronic "
    "lesions the CSF-like cavity enclosed by the hyperintense rim whose mirror image is "
    "tissue; connected-component clean-up (Van Leemput et al. 2001; Schmidt et al. 2012).",
)
LESION_INPUTS = LesionInputs(
    rows=_ROWS,
    sessions=config["sessions"],
    baseline=config["baseline_session"],
    has=has,
    sessions_with=sessions_with,
    expand=expand,
)


rule lesion_segment:
    input:
        unpack(LESION_INPUTS.baseline_dwi),
        t1w=T1W_PREPROC,
        t1w_raw=raw("t1w"),
        brain_mask=BRAIN_MASK_AFFINE,
        xfm=XFM_MNI_TO_T1W_AFFINE,
        flair=LESION_INPUTS.optional_raw("flair", "FLAIR"),
        manual=LESION_INPUTS.optional_raw("lesion_roi"),
        # QC review page edits (lesion.reviewed_dir): used first; the sidecar is an input too
        reviewed=LESION_INPUTS.optional_raw("lesion_reviewed"),
        reviewed_sidecar=LESION_INPUTS.optional_sidecar("lesion_reviewed"),
    output:
        mask=LESION_MASK,
        metrics=LESION_METRICS,
        figure=LESION_FIGURE,
        flair_t1w=LESION_FLAIR_T1W,
    log:
        per_session("logs", "lesion_segment"),
    benchmark:
        per_session("benchmarks", "lesion_segment")
    container:
        CONTAINER
    threads: THREADS
    resources:
        mem_mb=mem_mb_of("lesion_segment"),
        runtime=runtime_of("lesion_segment"),
    params:
        on_error=ON_ERROR,
        flair=LESION_INPUTS.option("--flair", "flair"),
        manual=LESION_INPUTS.option("--manual", "manual"),
        reviewed=LESION_INPUTS.option("--reviewed", "reviewed"),
        dwi=lambda wildcards, input: (
            f"--dwi {input.dwi} --bval {input.bval} --bvec {input.bvec}"
            if "dwi" in input.keys()
            else ""
        ),
        is_baseline=lambda wildcards: (
            "--is-baseline" if wildcards.session == config["baseline_session"] else ""
        ),
        gates=" ".join(
            f"--{key.replace('_', '-')} {LESION_CFG[key]}"
            for key in ("adc_threshold", *SESSION_GATE_KEYS)
        ),
        manual_overrides=LESION_CFG["manual_overrides_automatic"],
        manual_threshold=LESION_CFG["manual_threshold"],
        manual_labels=option_list("--manual-labels", LESION_CFG["manual_labels"]),
        seed_z=LESION_CFG["seed_z"],
        seed_smoothing_mm=LESION_CFG["seed_smoothing_mm"],
        grow_z=LESION_CFG["grow_z"],
        asymmetry_z=LESION_CFG["asymmetry_z"],
        min_component_ml=LESION_CFG["min_component_ml"],
        core_enclosure=LESION_CFG["core_enclosure"],
        brain_dilation_mm=LESION_CFG["brain_dilation_mm"],
        bilateral_fraction=LESION_CFG["bilateral_fraction"],
        registration_voxel_mm=LESION_CFG["registration_voxel_mm"],
        n4_shrink_factor=LESION_CFG["n4_shrink_factor"],
        max_voxel_mm=config["anat"]["max_voxel_mm"],
    shell:
        "resstore lesion-segment --t1w {input.t1w} --t1w-raw {input.t1w_raw}"
        " --max-voxel-mm {params.max_voxel_mm}"
        " --brain-mask {input.brain_mask}"
        " --xfm {input.xfm} {params.flair} {params.manual} {params.reviewed}"
        " {params.dwi} {params.is_baseline} {params.gates}"
        " --manual-overrides {params.manual_overrides}"
        " --manual-threshold {params.manual_threshold} {params.manual_labels}"
        " --seed-z {params.seed_z} --seed-smoothing-mm {params.seed_smoothing_mm}"
        " --grow-z {params.grow_z} --asymmetry-z {params.asymmetry_z}"
        " --min-component-ml {params.min_component_ml}"
        " --core-enclosure {params.core_enclosure}"
        " --brain-dilation-mm {params.brain_dilation_mm}"
        " --bilateral-fraction {params.bilateral_fraction}"
        " --registration-voxel-mm {params.registration_voxel_mm}"
        " --n4-shrink-factor {params.n4_shrink_factor}"
        " --out-mask {output.mask} --out-metrics {output.metrics} --out-figure {output.figure}"
        " --out-flair {output.flair_t1w}"
        " --threads {threads} --log {log} {params.on_error}"


rule lesion_side:
    input:
        metrics=LESION_INPUTS.session_path(LESION_METRICS, "side"),
    output:
        LESION_SIDE,
    log:
        f"{OUT}/logs/lesion_side/sub-{{subject}}.log",
    benchmark:
        f"{OUT}/benchmarks/lesion_side/sub-{{subject}}.tsv"
    container:
        CONTAINER
    resources:
        mem_mb=500,
        runtime=2,
    params:
        metrics=LESION_INPUTS.option("--metrics", "metrics"),
        session=lambda wildcards: LESION_INPUTS.reference_session(wildcards.subject) or "",
        participants=(
            f"--participants {PARTICIPANTS_TSV}" if os.path.exists(PARTICIPANTS_TSV) else ""
        ),
    shell:
        "resstore lesion-side --subject {wildcards.subject} {params.metrics}"
        " --session '{params.session}' {params.participants} --out {output} --log {log}"
