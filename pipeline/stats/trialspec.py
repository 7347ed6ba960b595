"""The trial analysis spec: the statistical analysis plan as a validated YAML file.

``configs/trials/resstore.yaml`` and ``configs/trials/aduse.yaml`` are the two
trials' specs; :func:`load_trial_spec` validates one against
``pipeline/schemas/trial.schema.yaml`` (defaults filled, unknown keys are
errors) and then checks what a schema cannot (visits that exist, one primary
endpoint, the fields each endpoint type needs). :func:`trial_spec_from_config`
builds the default RESSTORE spec of the config ``stats`` section (primary
endpoint + imaging biomarkers), the route used when no ``--spec`` is given.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from pipeline.config import _describe, _with_defaults
from pipeline.errors import PipelineInputError

SCHEMA_FILE = "trial.schema.yaml"
TYPES = ("continuous", "binary", "ordinal", "count", "time_to_event")
MODELS = {
    "continuous": ("mmrm", "ancova", "random_intercept", "t_test", "mann_whitney"),
    "binary": ("risk_difference", "fisher_exact", "chi_squared", "logistic", "cmh"),
    "ordinal": ("proportional_odds", "cmh_mean_score"),
    "count": ("poisson", "negative_binomial"),
    "time_to_event": ("cox", "log_rank"),
}
DEFAULT_MODEL = {
    "continuous": "mmrm",
    "binary": "risk_difference",
    "ordinal": "proportional_odds",
    "count": "negative_binomial",
    "time_to_event": "cox",
}
ROLE_ORDER = ("primary", "secondary", "safety", "exploratory")


@dataclass
class Endpoint:
    """One endpoint of the spec (fields as in the schema's ``$defs/endpoint``)."""

    name: str
    type: str
    source: dict
    label: str = ""
    role: str = "secondary"
    units: str = ""
    better: str = "n/a"
    levels: list | None = None
    responder: dict | None = None
    visits: list | None = None
    visit: str | None = None
    model: str | None = None
    mcid: dict | None = None
    family: str | None = None
    adjust: list | None = None

    @property
    def main_model(self) -> str:
        return self.model or DEFAULT_MODEL[self.type]

    @property
    def confirmatory(self) -> bool:
        return self.role == "primary"


@dataclass
class TrialSpec:
    """A validated trial analysis spec (see ``pipeline/schemas/trial.schema.yaml``)."""

    trial: str
    treated_arm: str
    control_arm: str
    visits: list
    baseline_visit: str
    primary_visit: str
    endpoints: list
    title: str = ""
    visit_labels: dict = field(default_factory=dict)
    visit_days: dict = field(default_factory=dict)
    covariates: list = field(default_factory=list)
    strata: list = field(default_factory=list)
    cmh_stratum: str | None = None
    analysis_sets: dict = field(default_factory=lambda: {"ITT": None})
    ddf: str = "kenward-roger"
    lsmeans_weights: str = "equal"
    random_intercept_model: bool = True
    simple_tests: bool = True
    min_subjects_per_arm: int = 3
    small_arm_warning: int = 10
    families: dict = field(default_factory=dict)
    dsmb: dict | None = None
    source: str = ""

    @property
    def post_visits(self) -> list:
        return [v for v in self.visits if v != self.baseline_visit]

    @property
    def primary_endpoint(self) -> Endpoint | None:
        return next((e for e in self.endpoints if e.role == "primary"), None)

    def endpoint(self, name: str) -> Endpoint:
        return next(e for e in self.endpoints if e.name == name)

    def ordered_endpoints(self) -> list:
        """Endpoints with the primary first, then by role, in spec order within a role."""
        return sorted(self.endpoints, key=lambda e: ROLE_ORDER.index(e.role))

    def files(self) -> list:
        """Every table file the spec names (relative to the BIDS folder unless absolute)."""
        out = []
        for e in self.endpoints:
            s = e.source
            out += [s[k] for k in ("file", "events") if k in s]
            if "followup" in s:
                out.append(s["followup"]["file"])
        if self.dsmb:
            out += [self.dsmb["events"], self.dsmb["followup"]["file"]]
        return list(dict.fromkeys(out))

    def uses_features(self) -> bool:
        return any(e.source.get("features") for e in self.endpoints)

    def to_dict(self) -> dict:
        return asdict(self)


def schema() -> dict:
    """The trial spec JSON schema (``pipeline/schemas/trial.schema.yaml``) as a dict."""
    return yaml.safe_load(resources.files("pipeline").joinpath("schemas", SCHEMA_FILE).read_text())


def load_trial_spec(path) -> TrialSpec:
    """Read, validate and resolve a trial spec YAML file.

    Raises
    ------
    PipelineInputError
        Naming the file and every problem (schema errors, then semantic ones).
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(path, "trial spec not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PipelineInputError(path, f"not valid YAML: {exc}") from exc
    return trial_spec_from_dict(data, source=str(path))


def trial_spec_from_dict(data, *, source: str = "trial spec") -> TrialSpec:
    """Validate a spec mapping against the schema (defaults filled) and resolve it."""
    if not isinstance(data, dict):
        raise PipelineInputError(source, "a trial spec must be a mapping")
    filled = copy.deepcopy(data)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema())
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        raise PipelineInputError(source, "invalid trial spec: " + "; ".join(_describe(e) for e in errors))
    visits = [v["name"] for v in filled["visits"]]
    baseline = filled["baseline_visit"] or visits[0]
    problems = []
    if len(set(visits)) != len(visits):
        problems.append(f"visits repeat a name: {visits}")
    if baseline not in visits:
        problems.append(f"baseline_visit {baseline!r} is not one of the visits {visits}")
    post = [v for v in visits if v != baseline]
    primary_visit = filled["primary_visit"] or (post[-1] if post else baseline)
    if primary_visit not in visits:
        problems.append(f"primary_visit {primary_visit!r} is not one of the visits {visits}")
    endpoints = [Endpoint(**e) for e in filled["endpoints"]]
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        problems.append(f"endpoint names repeat: {names}")
    primaries = [e.name for e in endpoints if e.role == "primary"]
    if len(primaries) > 1:
        problems.append(
            f"more than one primary endpoint: {primaries} (the confirmatory one is role: primary)"
        )
    for e in endpoints:
        problems += _check_endpoint(e, visits, filled["families"])
    if problems:
        raise PipelineInputError(source, "; ".join(problems))
    cont = filled["continuous"]
    return TrialSpec(
        trial=filled["trial"],
        title=filled["title"],
        treated_arm=filled["arms"]["treated"],
        control_arm=filled["arms"]["control"],
        visits=visits,
        baseline_visit=baseline,
        primary_visit=primary_visit,
        endpoints=endpoints,
        visit_labels={v["name"]: v["label"] for v in filled["visits"]},
        visit_days={v["name"]: v["day"] for v in filled["visits"]},
        covariates=filled["covariates"],
        strata=filled["strata"],
        cmh_stratum=filled["cmh_stratum"],
        analysis_sets=dict(filled["analysis_sets"]),
        ddf=cont["ddf"],
        lsmeans_weights=cont["lsmeans_weights"],
        random_intercept_model=cont["random_intercept_model"],
        simple_tests=cont["simple_tests"],
        min_subjects_per_arm=filled["min_subjects_per_arm"],
        small_arm_warning=filled["small_arm_warning"],
        families=filled["families"],
        dsmb=filled["dsmb"],
        source=source,
    )


def _check_endpoint(e: Endpoint, visits, families) -> list:
    where = f"endpoint {e.name}"
    s, out = e.source, []
    for v in (e.visits or []) + ([e.visit] if e.visit else []):
        if v not in visits:
            out.append(f"{where}: visit {v!r} is not one of the visits {visits}")
    if e.family and e.family not in families:
        out.append(f"{where}: family {e.family!r} is not declared under families ({sorted(families)})")
    if e.model and e.model not in MODELS[e.type] and not (e.type == "continuous" and e.model == "ancova"):
        out.append(f"{where}: model {e.model!r} does not fit type {e.type} (one of {MODELS[e.type]})")
    if e.mcid and e.type != "continuous":
        out.append(f"{where}: mcid is for continuous endpoints")
    if e.mcid and e.better == "n/a":
        out.append(f"{where}: an mcid needs a better direction")
    by_visit = ("file" in s and ("column" in s or "columns" in s)) or s.get("features")
    if e.type == "continuous" and not by_visit:
        out.append(f"{where}: continuous needs source file + column(s), or features: true")
    if e.type == "ordinal" and not ("file" in s and "column" in s and e.levels):
        out.append(f"{where}: ordinal needs source file + column and levels")
    if e.type == "binary" and not (("file" in s and "column" in s) or "events" in s):
        out.append(f"{where}: binary needs source file + column (0/1 or a responder rule) or events")
    if e.type == "count" and not ("events" in s or ("file" in s and "column" in s and "time" in s)):
        out.append(
            f"{where}: count needs source events (+ followup) or file + column (count) + time (exposure)"
        )
    if e.type == "time_to_event" and not ("events" in s or ("file" in s and "time" in s and "event" in s)):
        out.append(f"{where}: time_to_event needs source file + time + event, or events (+ followup)")
    if "events" in s and "followup" not in s:
        out.append(f"{where}: an events source needs followup (file, column) for exposure and censoring")
    if e.responder and e.type != "binary":
        out.append(f"{where}: responder is for binary endpoints")
    return out


def trial_spec_from_config(stats: dict, *, sessions, baseline_session, primary_file=None) -> TrialSpec:
    """The default RESSTORE spec of the config ``stats`` section (no ``--spec``).

    The primary endpoint (``stats.primary_outcome``, change from baseline,
    lower is better) and the imaging biomarkers of features.tsv (BH family
    ``biomarkers``), in the config's visits, arms, covariates and sets.
    """
    from pipeline.stats.spec import AnalysisSpec

    old = AnalysisSpec.from_config(stats, sessions=sessions, baseline_session=baseline_session)
    source = {"features": True, "exclude": list(old.not_biomarkers)}
    if old.biomarkers is not None:
        source["include"] = list(old.biomarkers)
    endpoints = [
        {
            "name": old.primary_outcome_column,
            "label": f"{old.primary_outcome_column} ({old.primary_outcome_file})",
            "role": "primary",
            "type": "continuous",
            "units": "points",
            "better": "lower",
            "source": {
                "file": primary_file or old.primary_outcome_file,
                "column": old.primary_outcome_column,
            },
        },
        {
            "name": "imaging",
            "label": "imaging biomarkers (features.tsv)",
            "role": "exploratory",
            "type": "continuous",
            "source": source,
            "family": "biomarkers",
        },
    ]
    cont = {"random_intercept_model": old.random_intercept_model}
    for key in ("ddf", "lsmeans_weights"):
        if str(stats.get(key, "")).strip() not in ("", "null", "None"):
            cont[key] = str(stats[key])
    return trial_spec_from_dict(
        {
            "trial": "RESSTORE",
            "title": "RESSTORE (config stats section)",
            "arms": {"treated": old.treated_arm, "control": old.control_arm},
            "visits": [{"name": v} for v in old.visits],
            "baseline_visit": old.baseline_visit,
            "primary_visit": old.primary_visit,
            "covariates": old.covariates,
            "strata": [c for c in ("center",) if c in old.covariates],
            "analysis_sets": old.analysis_sets,
            "continuous": cont,
            "families": {"biomarkers": "imaging biomarkers"},
            "endpoints": endpoints,
        },
        source="config stats",
    )


def workflow_inputs(spec_path, bids_dir) -> dict:
    """What the Snakemake stats rule needs of a trial spec: its tables (paths under ``bids_dir``) and
    whether it analyses features.tsv."""
    spec = load_trial_spec(spec_path)
    tables = [str(p if Path(p).is_absolute() else Path(bids_dir) / p) for p in spec.files()]
    return {"tables": tables, "features": spec.uses_features()}
