# RESSTORE imaging-biomarker pipeline.
#   snakemake --cores N --configfile my_study.yaml
# The configuration is validated against workflow/schemas/config.schema.yaml
# (a misspelled key is an error). Rules live in workflow/rules/<stage>.smk and
# call one `resstore <command>` each; the science is in the `pipeline` package.

import os

from snakemake.utils import min_version

from pipeline.config import validate_config

min_version("9.0")


# defaults, read relative to this file so that --directory works from anywhere
configfile: os.path.join(workflow.basedir, "configs", "config.yaml")


# one validator (the package's, also behind `resstore validate-config`): a misspelled
# key is one line naming it; the validated copy, defaults filled, replaces the raw one
config.update(validate_config(config, source="configuration"))


# In data order: each file reads only contracts of common.smk made by files above it.
include: "workflow/rules/common.smk"
include: "workflow/rules/anat_affine.smk"
include: "workflow/rules/flair.smk"
include: "workflow/rules/lesion.smk"
include: "workflow/rules/anat_syn.smk"
include: "workflow/rules/lesion_load.smk"
include: "workflow/rules/dwi.smk"
include: "workflow/rules/func.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/stats.smk"


# One run per output folder (pipeline/lock.py): a second run on the same output_dir,
# from any working directory, stops with the holder's PID and host; a stale lock of a
# killed run on this host is taken over, so the same command resumes.
onstart:
    from pipeline.lock import acquire

    acquire(config["output_dir"])


onsuccess:
    from pipeline.lock import release

    release(config["output_dir"])


onerror:
    from pipeline.lock import release

    release(config["output_dir"])


rule all:
    default_target: True
    input:
        FINAL_TARGETS,
