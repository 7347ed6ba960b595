# DWI stream: input checks and acquisition / image-quality metrics.

DWI_METRICS = deriv("dwi", "metrics", ".json", desc="dwiqc")
register_metrics("dwi", "dwi", DWI_METRICS)


rule dwi_qc:
    input:
        dwi=raw("dwi"),
        bval=raw("bval"),
        bvec=raw("bvec"),
    output:
        metrics=DWI_METRICS,
    container:
        CONTAINER
    log:
        per_session("logs", "dwi_qc"),
    benchmark:
        per_session("benchmarks", "dwi_qc")
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "resstore dwi-qc --dwi {input.dwi} --bval {input.bval} --bvec {input.bvec}"
        " --out-metrics {output.metrics} --log {log}"
