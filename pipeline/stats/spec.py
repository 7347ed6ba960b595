"""The analysis specification (config ``stats`` section, resolved).

Snakemake's ``--config stats='{allocation: key.tsv}'`` parses every scalar as
a string (``null`` becomes ``"null"``), so the section holds only strings,
lists and mappings, and ``"null"``/``""`` mean "not set".
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field

from pipeline.errors import PipelineInputError

# Image-quality metrics are declared with a "better" direction but are not biomarkers.
DEFAULT_NOT_BIOMARKERS = ("*snr*", "*dvars*", "*bias*", "*registration*", "*motion*",
                          "*framewise*", "*_fd_*", "*outlier*", "*qc*")
DEFAULT_ANALYSIS_SETS = {"ITT": None, "mITT": "alive_m06_1w", "PP": "per_protocol"}
DEFAULT_COVARIATES = ("sex", "age", "recanalization", "lesion_side", "center")


def unset(value) -> bool:
    """True for None and the strings Snakemake's --config produces for null."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none"))


@dataclass
class AnalysisSpec:
    """What to analyse (every field documented in the config schema, ``stats``)."""

    visits: list
    baseline_visit: str
    primary_visit: str
    treated_arm: str = "ADSC"
    control_arm: str = "placebo"
    primary_outcome_file: str = "phenotype/nihss.tsv"
    primary_outcome_column: str = "nihss_motor"
    biomarkers: list | None = None
    not_biomarkers: list = field(default_factory=lambda: list(DEFAULT_NOT_BIOMARKERS))
    covariates: list = field(default_factory=lambda: list(DEFAULT_COVARIATES))
    analysis_sets: dict = field(default_factory=lambda: dict(DEFAULT_ANALYSIS_SETS))
    random_intercept_model: bool = True

    @property
    def post_visits(self) -> list:
        return [v for v in self.visits if v != self.baseline_visit]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, stats: dict, *, sessions, baseline_session) -> AnalysisSpec:
        """Resolve the config ``stats`` section (defaults from the top-level sessions)."""
        stats = dict(stats or {})
        visits = [str(v).removeprefix("ses-") for v in
                  (sessions if unset(stats.get("visits")) else stats["visits"])]
        baseline = baseline_session if unset(stats.get("baseline_visit")) else stats["baseline_visit"]
        if baseline not in visits:
            raise PipelineInputError("stats.baseline_visit",
                                     f"{baseline!r} is not one of the visits {visits}")
        post = [v for v in visits if v != baseline]
        if not post:
            raise PipelineInputError("stats.visits", "no post-baseline visit to analyse")
        primary = stats.get("primary_visit")
        primary = ("m06" if "m06" in post else post[-1]) if unset(primary) else str(primary)
        if primary not in post:
            raise PipelineInputError("stats.primary_visit",
                                     f"{primary!r} is not a post-baseline visit {post}")
        arms = stats.get("arms") or {}
        outcome = stats.get("primary_outcome") or {}
        sets = stats.get("analysis_sets")
        sets = dict(DEFAULT_ANALYSIS_SETS) if sets is None else {
            str(k): (None if unset(v) else str(v)) for k, v in sets.items()}
        biomarkers = stats.get("biomarkers")
        flag = str(stats.get("random_intercept_model", "true")).lower()
        spec = cls(
            visits=visits, baseline_visit=baseline, primary_visit=primary,
            treated_arm=str(arms.get("treated", "ADSC")), control_arm=str(arms.get("control", "placebo")),
            primary_outcome_file=str(outcome.get("file", "phenotype/nihss.tsv")),
            primary_outcome_column=str(outcome.get("column", "nihss_motor")),
            biomarkers=None if unset(biomarkers) else [str(b) for b in biomarkers],
            not_biomarkers=[str(p) for p in stats.get("not_biomarkers", DEFAULT_NOT_BIOMARKERS)],
            covariates=[str(c) for c in stats.get("covariates", DEFAULT_COVARIATES)],
            analysis_sets=sets, random_intercept_model=flag in ("true", "yes", "1"))
        if spec.treated_arm == spec.control_arm:
            raise PipelineInputError("stats.arms", "treated and control arm labels must differ")
        return spec

    def is_default_biomarker(self, name: str) -> bool:
        return not any(fnmatch.fnmatch(name, pattern) for pattern in self.not_biomarkers)
