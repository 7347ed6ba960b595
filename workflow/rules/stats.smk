# Trial statistics: runs only when an allocation key is given at analysis time
# (config stats.allocation, e.g. --config stats='{allocation: /secure/key.tsv}').
# Blinding: this is the only rule that reads the key; without it the rule does not
# exist and nothing in the DAG depends on the arm.

import json

from pipeline.stats.spec import unset

STATS_ALLOCATION = config["stats"]["allocation"]
STATS_RESULTS = f"{OUT}/stats/results.tsv"
STATS_RESULTS_JSON = f"{OUT}/stats/results.json"
STATS_EXCLUSIONS = f"{OUT}/stats/exclusions.tsv"
STATS_REPORT = f"{OUT}/stats/report.html"

if not unset(STATS_ALLOCATION):

    FINAL_TARGETS.extend([STATS_RESULTS, STATS_EXCLUSIONS, STATS_REPORT])

    rule stats:
        input:
            features=FEATURES_TSV,
            dictionary=FEATURES_JSON,
            participants=os.path.join(config["bids_dir"], "participants.tsv"),
            phenotype=os.path.join(config["bids_dir"], config["stats"]["primary_outcome"]["file"]),
            allocation=STATS_ALLOCATION,
            ratings=[] if unset(config["qc"]["ratings"]) else [config["qc"]["ratings"]],
        output:
            results=STATS_RESULTS,
            results_json=STATS_RESULTS_JSON,
            exclusions=STATS_EXCLUSIONS,
            report=STATS_REPORT,
        params:
            stats_config=json.dumps(config["stats"]),
            sessions=config["sessions"],
            baseline_session=config["baseline_session"],
            ratings=lambda wildcards, input: f"--ratings {input.ratings}" if input.ratings else "",
        container:
            CONTAINER
        log:
            f"{OUT}/logs/stats.log",
        benchmark:
            f"{OUT}/benchmarks/stats.tsv"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        shell:
            "resstore stats --features {input.features} --dictionary {input.dictionary}"
            " --participants {input.participants} --phenotype {input.phenotype}"
            " --allocation {input.allocation} {params.ratings}"
            " --stats-config {params.stats_config:q} --sessions {params.sessions}"
            " --baseline-session {params.baseline_session} --out-results {output.results}"
            " --out-results-json {output.results_json}"
            " --out-exclusions {output.exclusions} --out-report {output.report} --log {log}"
