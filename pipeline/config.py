"""Configuration: one JSON schema, used by the Snakefile and by the package.

The schema (``pipeline/schemas/config.schema.yaml``, linked from
``workflow/schemas/``) carries every default, with units in the descriptions,
and forbids unknown keys.
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from pipeline.errors import ConfigError

SCHEMA_FILE = "config.schema.yaml"


def schema() -> dict:
    """The configuration JSON schema as a dict."""
    text = resources.files("pipeline").joinpath("schemas", SCHEMA_FILE).read_text()
    return yaml.safe_load(text)


def schema_default(section: str, key: str):
    """The schema's default of ``config[section][key]`` (command-line defaults
    come from here, so a command run by hand behaves as the workflow's)."""
    return schema()["properties"][section]["properties"][key]["default"]


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _describe(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{where}: {error.message}; allowed keys: {', '.join(allowed)}"
    return f"{where}: {error.message}"


def validate_config(config: dict, *, source: str = "config") -> dict:
    """Validate ``config`` and return a copy with every default filled in.

    Raises
    ------
    ConfigError
        Naming the offending key, e.g. ``"sesions" was unexpected``.
    """
    filled = copy.deepcopy(config)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema())
    # fill defaults in nested objects first pass, then report every error
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(source, "invalid configuration: " + "; ".join(_describe(e) for e in errors))
    return filled


def load_config(*paths) -> dict:
    """Merge YAML files (later ones override, nested dicts merged) and validate."""
    merged: dict = {}
    for path in paths:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(path, "configuration must be a mapping of keys to values")
        merged = deep_merge(merged, data)
    return validate_config(merged, source=", ".join(str(p) for p in paths) or "config")


def deep_merge(base: dict, override: dict) -> dict:
    """Recursive dict merge (``override`` wins), as Snakemake merges configfiles."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# Keys that say where data is, not how sessions are processed, and the stats
# section (the allocation key is given only at analysis time and must not change
# anything upstream): left out of the hash stamped on every feature row.
LOCATION_KEYS = ("bids_dir", "output_dir", "container", "stats")


def config_hash(config: dict) -> str:
    """Short, stable hash of the processing parameters of a validated configuration.

    Locations (:data:`LOCATION_KEYS`) are left out.
    """
    kept = {k: v for k, v in config.items() if k not in LOCATION_KEYS}
    blob = json.dumps(kept, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
