# Trial statistics: runs only when an allocation key is given at analysis time
# (config stats.allocation, e.g. --config stats='{allocation: /secure/key.tsv}').
# Blinding: this is the only rule that reads the key; without it the rule does not
# exist and nothing in the DAG depends on the arm.
# With stats.spec (a trial spec YAML, configs/trials/*.yaml) every endpoint of the spec is
# analysed from its tables; without it the config section gives the default RESSTORE spec.

import json

from pipeline.stats.spec import unset
from pipeline.stats.trialspec import workflow_inputs

STATS_ALLOCATION = config["stats"]["allocation"]
STATS_SPEC = None if unset(config["stats"].get("spec")) else config["stats"]["spec"]
STATS_RESULTS = f"{OUT}/stats/results.tsv"
STATS_RESULTS_JSON = f"{OUT}/stats/results.json"
STATS_EXCLUSIONS = f"{OUT}/stats/exclusions.tsv"
STATS_REPORT = f"{OUT}/stats/report.html"

if not unset(STATS_ALLOCATION):

    FINAL_TARGETS.extend([STATS_RESULTS, STATS_EXCLUSIONS, STATS_REPORT])
    if STATS_SPEC:
        STATS_NEEDS = workflow_inputs(STATS_SPEC, config["bids_dir"])
        STATS_TABLES = STATS_NEEDS["tables"]
        STATS_FEATURES = STATS_NEEDS["features"]
    else:
        STATS_TABLES = [
            os.path.join(config["bids_dir"], config["stats"]["primary_outcome"]["file"])
        ]
        STATS_FEATURES = True

    rule stats:
        input:
            features=FEATURES_TSV if STATS_FEATURES else [],
            dictionary=FEATURES_JSON if STATS_FEATURES else [],
            participants=os.path.join(config["bids_dir"], "participants.tsv"),
            tables=STATS_TABLES,
            allocation=STATS_ALLOCATION,
            ratings=[] if unset(config["qc"]["ratings"]) else [config["qc"]["ratings"]],
        output:
            results=STATS_RESULTS,
            results_json=STATS_RESULTS_JSON,
            exclusions=STATS_EXCLUSIONS,
            report=STATS_REPORT,
        log:
            f"{OUT}/logs/stats.log",
        benchmark:
            f"{OUT}/benchmarks/stats.tsv"
        container:
            CONTAINER
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            inputs=lambda wildcards, input: (
                ["--spec", STATS_SPEC, "--bids-dir", config["bids_dir"]]
                if STATS_SPEC
                else [
                    "--phenotype",
                    input.tables[0],
                    "--sessions",
                    *config["sessions"],
                    "--baseline-session",
                    config["baseline_session"],
                    "--stats-config",
                    json.dumps(config["stats"]),
                ]
            ),
            features=lambda wildcards, input: (
                f"--features {input.features} --dictionary {input.dictionary}"
                if input.features
                else ""
            ),
            ratings=lambda wildcards, input: f"--ratings {input.ratings}" if input.ratings else "",
        shell:
            "resstore stats {params.inputs:q} {params.features} --participants {input.participants}"
            " --allocation {input.allocation} {params.ratings} --out-results {output.results}"
            " --out-results-json {output.results_json}"
            " --out-exclusions {output.exclusions} --out-report {output.report} --log {log}"
