# QC reports: one self-contained HTML page per session, its lesion review page (NiiVue
# editor: the reviewer paints or erases the lesion mask and saves it for lesion.reviewed_dir)
# and the group dashboard.
# Every reportlet a stream declares with register_reportlet() appears on the page of each
# session where its modality runs; pages compare the session's metrics with the group
# (features.tsv) and show reviewer ratings (config qc.ratings). Blinded: the allocation key
# is never an input.

import hashlib
import json
import os

REPORT_SESSION = f"{OUT}/reports/sub-{{subject}}_ses-{{session}}.html"
REPORT_REVIEW = f"{OUT}/reports/sub-{{subject}}_ses-{{session}}_review.html"
REPORT_INDEX = f"{OUT}/reports/index.html"
QC_RATINGS = [config["qc"]["ratings"]] if config["qc"]["ratings"] else []
# names the browser storage that the pages of this study share (ratings, rater name)
QC_STUDY_ID = hashlib.sha256(os.path.abspath(OUT).encode()).hexdigest()[:12]

FINAL_TARGETS.append(REPORT_INDEX)
FINAL_TARGETS.extend(
    expand(
        REPORT_REVIEW,
        zip,
        subject=[s for s, _ in sessions_with("lesion")],
        session=[v for _, v in sessions_with("lesion")],
    )
)


rule report_session:
    input:
        figures=lambda wildcards: [r["figure"] for r in session_reportlets(wildcards)],
        metrics=lambda wildcards: [
            r["metrics"] for r in session_reportlets(wildcards) if r["metrics"]
        ],
        features=FEATURES_TSV,
        inventory=SESSIONS_TSV,
        ratings=QC_RATINGS,
    output:
        REPORT_SESSION,
    log:
        per_session("logs", "report_session"),
    benchmark:
        per_session("benchmarks", "report_session")
    container:
        CONTAINER
    resources:
        mem_mb=500,
        runtime=5,
    params:
        reportlets=lambda wildcards: json.dumps(session_reportlets(wildcards)),
        ratings=lambda wildcards, input: f"--ratings {input.ratings}" if input.ratings else "",
        outlier_robust_z=config["qc"]["outlier_robust_z"],
        outlier_min_sessions=config["qc"]["outlier_min_sessions"],
        study=QC_STUDY_ID,
    shell:
        "resstore report-session --participant sub-{wildcards.subject}"
        " --session {wildcards.session} --reportlets {params.reportlets:q}"
        " --features {input.features} --inventory {input.inventory} {params.ratings}"
        " --outlier-robust-z {params.outlier_robust_z}"
        " --outlier-min-sessions {params.outlier_min_sessions} --study {params.study}"
        " --out {output} --log {log}"


rule report_review:
    input:
        t1w=T1W_PREPROC,
        mask=LESION_MASK,
        brain_mask=BRAIN_MASK_AFFINE,
        flair=lambda wildcards: (
            expand(LESION_FLAIR_T1W, **wildcards) if has("FLAIR", wildcards) else []
        ),
        # z-map (func) and colour FA (dwi) where those streams run (register_review_layer)
        layers=lambda wildcards: list(session_review_layers(wildcards)[0].values()),
    output:
        REPORT_REVIEW,
    log:
        per_session("logs", "report_review"),
    benchmark:
        per_session("benchmarks", "report_review")
    container:
        CONTAINER
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        flair=lambda wildcards, input: f"--flair {input.flair}" if input.flair else "",
        layers=lambda wildcards: " ".join(
            f"--{option.replace('_', '-')} {path}"
            for option, path in session_review_layers(wildcards)[0].items()
        ),
        options=lambda wildcards: session_review_layers(wildcards)[1],
    shell:
        "resstore report-review --participant sub-{wildcards.subject}"
        " --session {wildcards.session} --t1w {input.t1w} --mask {input.mask}"
        " --brain-mask {input.brain_mask}"
        " {params.flair} {params.layers} {params.options} --out {output} --log {log}"


rule report_index:
    input:
        pages=[expand(REPORT_SESSION, subject=s, session=v)[0] for s, v in ALL_SESSIONS],
        features=FEATURES_TSV,
        inventory=SESSIONS_TSV,
        ratings=QC_RATINGS,
    output:
        REPORT_INDEX,
    log:
        f"{OUT}/logs/report_index.log",
    benchmark:
        f"{OUT}/benchmarks/report_index.tsv"
    container:
        CONTAINER
    resources:
        mem_mb=500,
        runtime=5,
    params:
        ratings=lambda wildcards, input: f"--ratings {input.ratings}" if input.ratings else "",
        outlier_robust_z=config["qc"]["outlier_robust_z"],
        outlier_min_sessions=config["qc"]["outlier_min_sessions"],
        study=QC_STUDY_ID,
    shell:
        "resstore report-index --features {input.features} --inventory {input.inventory}"
        " {params.ratings} --outlier-robust-z {params.outlier_robust_z}"
        " --outlier-min-sessions {params.outlier_min_sessions}"
        " --study {params.study} --out {output} --log {log}"
