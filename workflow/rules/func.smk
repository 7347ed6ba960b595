# Motor-task fMRI stream: input checks and image-quality metrics.

BOLD_METRICS = deriv("func", "metrics", ".json", task=TASK, desc="boldqc")
register_metrics("bold", "bold", BOLD_METRICS)


rule bold_qc:
    input:
        bold=raw("bold"),
        events=raw("events"),
    output:
        metrics=BOLD_METRICS,
    params:
        tr=row_value("bold_tr_s"),
    container:
        CONTAINER
    log:
        per_session("logs", "bold_qc"),
    benchmark:
        per_session("benchmarks", "bold_qc")
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "resstore bold-qc --bold {input.bold} --events {input.events} --tr {params.tr}"
        " --out-metrics {output.metrics} --log {log}"
