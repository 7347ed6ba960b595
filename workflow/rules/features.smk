# Inventory, per-session feature rows and the group feature table.


rule inventory:
    output:
        SESSIONS_TSV,
    log:
        f"{OUT}/logs/inventory.log",
    container:
        CONTAINER
    params:
        bids_dir=config["bids_dir"],
        sessions=config["sessions"],
        task=TASK,
        participant_label=config["participant_label"],
        exclude=config["exclude"],
        lesion_roi_dir=(
            f"--lesion-roi-dir {config['lesion_roi_dir']}" if config["lesion_roi_dir"] else ""
        ),
        reviewed_dir=(
            f"--reviewed-dir {config['lesion']['reviewed_dir']}"
            if config["lesion"]["reviewed_dir"]
            else ""
        ),
        digest=INVENTORY_DIGEST,
        cache_dir=os.path.join(OUT, ".resstore"),
    shell:
        "resstore inventory --bids-dir {params.bids_dir} --sessions {params.sessions}"
        " --task {params.task} --participant-label {params.participant_label}"
        " --exclude {params.exclude} {params.lesion_roi_dir} {params.reviewed_dir}"
        " --cache-dir {params.cache_dir}"
        " --out {output} --log {log}"


rule session_features:
    input:
        metrics=lambda wildcards: [path for _, path in session_metric_files(wildcards)],
        inventory=SESSIONS_TSV,
    output:
        SESSION_ROW,
    log:
        per_session("logs", "session_features"),
    localrule: True
    container:
        CONTAINER
    params:
        metrics=lambda wildcards: " ".join(
            f"{stream}={path}" for stream, path in session_metric_files(wildcards)
        ),
        config_hash=CONFIG_HASH,
    shell:
        "resstore session-features --participant sub-{wildcards.subject}"
        " --session {wildcards.session} --metrics {params.metrics}"
        " --inventory {input.inventory} --config-hash {params.config_hash}"
        " --out {output} --log {log}"


rule features:
    input:
        rows=[expand(SESSION_ROW, subject=s, session=v)[0] for s, v in ALL_SESSIONS],
        # reviewer ratings (QC reports) -> <modality>_rating, qc_status, qc_excluded_streams
        ratings=[config["qc"]["ratings"]] if config["qc"]["ratings"] else [],
    output:
        tsv=FEATURES_TSV,
        json=FEATURES_JSON,
    log:
        f"{OUT}/logs/features.log",
    localrule: True
    container:
        CONTAINER
    shell:
        "resstore collect-features --rows {input.rows} --ratings {input.ratings}"
        " --out-tsv {output.tsv} --out-json {output.json} --log {log}"


rule dataset_description:
    output:
        description=DATASET_DESCRIPTION,
        bidsignore=f"{OUT}/.bidsignore",
        readme=f"{OUT}/README",
    log:
        f"{OUT}/logs/dataset_description.log",
    localrule: True
    container:
        CONTAINER
    params:
        bids_dir=config["bids_dir"],
    shell:
        "resstore dataset-description --bids-dir {params.bids_dir} --out {output.description}"
        " --out-bidsignore {output.bidsignore} --out-readme {output.readme} --log {log}"
