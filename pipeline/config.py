"""Configuration: one JSON schema, used by the Snakefile and by the package.

The schema (``pipeline/schemas/config.schema.yaml``, linked from
``workflow/schemas/``) carries every default, with units in the descriptions,
and forbids unknown keys.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from pipeline.errors import ConfigError

SCHEMA_FILE = "config.schema.yaml"


@functools.lru_cache(maxsize=1)
def _schema_text_parsed() -> dict:
    text = resources.files("pipeline").joinpath("schemas", SCHEMA_FILE).read_text()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def schema() -> dict:
    """The configuration JSON schema as a dict (a fresh copy: callers may change it).

    Parsed once per process: every command-line option takes its default from here,
    and parsing the schema for each (81 times per command) took seconds of every job.
    """
    return copy.deepcopy(_schema_text_parsed())


def schema_default(section: str, key: str):
    """The schema's default of ``config[section][key]`` (command-line defaults
    come from here, so a command run by hand behaves as the workflow's)."""
    return schema()["properties"][section]["properties"][key]["default"]


def schema_property(section: str, key: str) -> dict:
    """The schema entry of ``config[section][key]`` (type, default, description...)."""
    return schema()["properties"][section]["properties"][key]


def add_schema_option(parser, section: str, key: str, *, flag: str | None = None, **overrides):
    """Add ``--<key>`` to an argparse parser with the schema's default and description.

    A command run by hand then behaves as the workflow runs it, and documents the same
    thing the configuration reference says. ``type``/``choices`` follow the schema
    (enums become choices; booleans are given as yes/no); ``overrides`` win.
    """
    entry = schema_property(section, key)
    kind = entry.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    options: dict = {"default": entry.get("default"),
                     "help": " ".join(str(entry.get("description", "")).split())
                     .replace("%", "%%") + f" (config {section}.{key})"}
    if "enum" in entry:
        options["choices"] = entry["enum"]
    if "boolean" in kinds:
        options.update(choices=("yes", "no"), default="yes" if entry.get("default") else "no")
    elif "integer" in kinds:
        options["type"] = int
    elif "number" in kinds:
        options["type"] = float
    if "array" in kinds:
        items = entry.get("items", {}).get("type")
        options["nargs"] = "+"
        options["type"] = int if items == "integer" else float if items == "number" else str
    options.update(overrides)
    return parser.add_argument(flag or "--" + key.replace("_", "-"), **options)


def add_schema_options(parser, section: str, *keys: str) -> None:
    """Add ``--<key>`` for each of ``keys`` of ``config[section]`` (:func:`add_schema_option`)."""
    for key in keys:
        add_schema_option(parser, section, key)


def add_file_options(parser, *items) -> None:
    """Add required path options, each ``(flag, help)``: every option says what it holds."""
    for flag, help_ in items:
        parser.add_argument(flag, required=True, help=help_)


def add_threads_option(parser, *, help: str = "ITK/BLAS threads"):
    """Add ``--threads`` (int, default 1), the threads a command may use.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser.
    help : str
        What the threads are for (which libraries use them).

    Returns
    -------
    argparse.Action
        The added option.

    Notes
    -----
    The command passes the value to :func:`pipeline.antsio.set_threads`; the
    workflow gives each rule its ``threads`` (``resources.threads_per_job``).
    """
    return parser.add_argument("--threads", type=int, default=1, help=help)


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


def _type_text(entry: dict) -> str:
    kind = entry.get("type", "object" if "properties" in entry else "")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if "enum" in entry:
        text += ": " + ", ".join(f"`{v}`" for v in entry["enum"])
    bounds = [f"{name} {entry[key]}" for key, name in (
        ("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
        if key in entry]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def reference_markdown() -> str:
    """The configuration reference (docs/configuration.md), made from the schema."""
    lines = ["# Configuration reference", "",
             "Generated from `pipeline/schemas/config.schema.yaml` by "
             "`resstore config-reference --out docs/configuration.md` (a test keeps it current). "
             "Unknown keys are an error; every key has the default shown. Validate a file with "
             "`resstore validate-config configs/config.yaml my_study.yaml`.", ""]

    def emit(properties: dict, prefix: str) -> None:
        rows, sections = [], []
        for key, entry in properties.items():
            if entry.get("type") == "object" and "properties" in entry:
                sections.append((key, entry))
                continue
            default = json.dumps(entry.get("default"), default=str)
            description = " ".join(str(entry.get("description", "")).split()).replace("|", "\\|")
            rows.append(f"| `{prefix}{key}` | {_type_text(entry)} | `{default}` | {description} |")
        if rows:
            lines.extend(["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""])
        for key, entry in sections:
            lines.extend([f"## `{prefix}{key}`", "",
                          " ".join(str(entry.get("description", "")).split()), ""])
            emit(entry["properties"], f"{prefix}{key}.")

    lines.extend(["## Top level", ""])
    emit(schema()["properties"], "")
    return "\n".join(lines).rstrip() + "\n"
