# FLAIR: image-quality metrics (the lesion stream builds on this modality).

FLAIR_METRICS = deriv("anat", "metrics", ".json", desc="flairqc")
register_metrics("flair", "FLAIR", FLAIR_METRICS)


rule flair_qc:
    input:
        flair=raw("flair"),
    output:
        metrics=FLAIR_METRICS,
    log:
        per_session("logs", "flair_qc"),
    benchmark:
        per_session("benchmarks", "flair_qc")
    container:
        CONTAINER
    resources:
        mem_mb=1500,
        runtime=5,
    params:
        on_error=ON_ERROR,
    shell:
        "resstore flair-qc --flair {input.flair} --out-metrics {output.metrics} --log {log} {params.on_error}"
