# FLAIR: image-quality metrics (the lesion stream builds on this modality).

FLAIR_METRICS = deriv("anat", "metrics", ".json", desc="flairqc")
register_metrics("flair", "FLAIR", FLAIR_METRICS)


rule flair_qc:
    input:
        flair=raw("flair"),
    output:
        metrics=FLAIR_METRICS,
    params:
        on_error=ON_ERROR,
    container:
        CONTAINER
    log:
        per_session("logs", "flair_qc"),
    benchmark:
        per_session("benchmarks", "flair_qc")
    resources:
        mem_mb=1500,
        runtime=5,
    shell:
        "resstore flair-qc --flair {input.flair} --out-metrics {output.metrics} --log {log} {params.on_error}"
