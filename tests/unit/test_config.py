import pytest
import yaml

from pipeline.config import config_hash, load_config, schema, validate_config
from pipeline.errors import ConfigError
from tests.conftest import REPO


def test_defaults_filled_and_nested():
    cfg = validate_config({"bids_dir": "x"})
    assert cfg["sessions"] == ["baseline", "m06"]
    assert cfg["anat"]["registration_voxel_mm"] == 2.0
    assert cfg["resources"]["threads_per_job"] == 2


def test_misspelled_top_level_key_is_named():
    with pytest.raises(ConfigError, match="'sesions' was unexpected"):
        validate_config({"bids_dir": "x", "sesions": ["baseline"]})


def test_misspelled_nested_key_is_named():
    with pytest.raises(ConfigError, match=r"anat: .*'registration_voxel' was unexpected"):
        validate_config({"bids_dir": "x", "anat": {"registration_voxel": 2}})


def test_wrong_type_and_missing_required():
    with pytest.raises(ConfigError, match="sessions"):
        validate_config({"bids_dir": "x", "sessions": "baseline"})
    with pytest.raises(ConfigError, match="bids_dir"):
        validate_config({})


def test_config_yaml_holds_every_default():
    """configs/config.yaml lists every key of the schema with the schema's default."""
    shipped = yaml.safe_load((REPO / "configs" / "config.yaml").read_text())

    def walk(props, values, prefix=""):
        for key, sub in props.items():
            assert key in values, f"configs/config.yaml lacks {prefix}{key}"
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub["properties"], values[key], f"{prefix}{key}.")
            elif key != "bids_dir":
                assert values[key] == sub["default"], f"{prefix}{key} differs from the schema"

    walk(schema()["properties"], shipped)


def test_every_schema_entry_has_description():
    def walk(props, prefix=""):
        for key, sub in props.items():
            assert sub.get("description") or sub.get("type") == "object", f"{prefix}{key}"
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub["properties"], f"{prefix}{key}.")

    walk(schema()["properties"])


def test_load_merges_files(tmp_path):
    base, override = tmp_path / "a.yaml", tmp_path / "b.yaml"
    base.write_text("bids_dir: a\nanat: {n4_shrink_factor: 2}\n")
    override.write_text("anat: {registration_voxel_mm: 3.0}\n")
    cfg = load_config(base, override)
    assert cfg["anat"]["n4_shrink_factor"] == 2
    assert cfg["anat"]["registration_voxel_mm"] == 3.0
    assert cfg["anat"]["template_mask_dilation_mm"] == 2.0  # default kept
    assert config_hash(cfg) == config_hash(load_config(base, override))
    assert config_hash(cfg) != config_hash(load_config(base))


def test_every_yaml_file_of_the_repository_parses():
    """Schema, configs, feature dictionaries, profiles: a ': ' in an unquoted
    description once broke the schema and the dictionary at import time."""
    import subprocess

    files = subprocess.run(["git", "ls-files", "*.yaml", "*.yml"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    assert len(files) >= 5
    for name in files:
        try:
            yaml.safe_load((REPO / name).read_text())
        except yaml.YAMLError as err:
            pytest.fail(f"{name}: {err}")


def test_anat_command_defaults_are_the_schema_defaults():
    """A command run by hand behaves as the workflow runs it."""
    from pipeline.anat.laplace import SULCAL_JUMP_MM
    from pipeline.cli import build_parser

    anat = {k: v["default"] for k, v in schema()["properties"]["anat"]["properties"].items()}
    parser = build_parser()

    def parsed(command, *required):
        return vars(parser.parse_args([command, *(x for opt in required for x in (opt, "x"))]))

    pre = parsed("anat-preproc", "--t1w", "--out-preproc", "--out-mask", "--out-xfm",
                 "--out-metrics", "--out-figure")
    reg = parsed("anat-register", "--t1w-preproc", "--brain-mask", "--out-mni-to-t1w",
                 "--out-t1w-to-mni", "--out-atlas", "--out-dk", "--out-metrics", "--out-figure")
    seg = parsed("anat-segment", "--t1w-preproc", "--mni-to-t1w", "--out-mask", "--out-dseg",
                 "--out-probseg", "--out-metrics", "--out-figure")
    thick = parsed("anat-thickness", "--t1w-preproc", "--dseg", "--probseg", "--atlas", "--dk",
                   "--out-thickness", "--out-table", "--out-metrics", "--out-figure",
                   "--lesion-side")
    got = {"registration_voxel_mm": pre["registration_voxel_mm"], "max_voxel_mm": pre["max_voxel_mm"],
           "n4_shrink_factor": pre["n4_shrink_factor"],
           "template_mask_dilation_mm": reg["mask_dilation_mm"],
           "syn_iterations": reg["syn_iterations"], "lesion_fill": reg["lesion_fill"],
           "prior_weight": seg["prior_weight"], "mrf_weight": seg["mrf_weight"],
           "partial_volume_band_mm": seg["partial_volume_band_mm"],
           "thickness_method": thick["method"], "thickness_grid_mm": thick["grid_mm"],
           "thickness_sulcal_jump_mm": thick["sulcal_jump_mm"],
           "thickness_voxel_mm": thick["voxel_mm"], "thickness_iterations": thick["iterations"]}
    assert got == anat
    assert reg["registration_voxel_mm"] == anat["registration_voxel_mm"]
    # the library default (tests, benchmarks, the phantom's thinning) is the workflow's too
    assert SULCAL_JUMP_MM == anat["thickness_sulcal_jump_mm"]


def test_configuration_reference_is_current():
    """docs/configuration.md is generated from the schema (resstore config-reference)."""
    from pipeline.config import reference_markdown
    from tests.conftest import REPO

    assert (REPO / "docs" / "configuration.md").read_text() == reference_markdown(), \
        "regenerate: resstore config-reference --out docs/configuration.md"


def test_every_command_option_has_help():
    import argparse

    from pipeline.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.option_strings[0]}" for name, parser in sub.choices.items()
               for a in parser._actions if a.option_strings and a.dest != "help" and not a.help]
    assert not missing, missing
    # and every --help renders (a bare % in a schema description broke dwi-preproc's)
    for name, parser in sub.choices.items():
        assert "--" in parser.format_help(), name


def test_threads_option_is_the_same_in_every_command():
    """``--threads`` (pipeline.config.add_threads_option): an int, 1 unless the rule says."""
    import argparse

    from pipeline.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    threads = {name: a for name, parser in sub.choices.items() for a in parser._actions
               if "--threads" in a.option_strings}
    assert {"anat-preproc", "lesion-segment", "func-glm", "dwi-preproc", "dwi-regions"} <= set(threads)
    assert {name: (a.type, a.default) for name, a in threads.items()} == \
        {name: (int, 1) for name in threads}
