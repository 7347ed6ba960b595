# RESSTORE imaging-biomarker pipeline.
#   snakemake --cores N --configfile my_study.yaml
# The configuration is validated against workflow/schemas/config.schema.yaml
# (a misspelled key is an error). Rules live in workflow/rules/<stage>.smk and
# call one `resstore <command>` each; the science is in the `pipeline` package.

import os

from snakemake.utils import min_version, validate

min_version("9.0")


# defaults, read relative to this file so that --directory works from anywhere
configfile: os.path.join(workflow.basedir, "configs", "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


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


rule all:
    input:
        FINAL_TARGETS,
    default_target: True
