# Two commands on a fresh machine (Python 3.11 with venv):
#   make demo   install, simulate a small phantom trial, run the pipeline on it
#   make test   install, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
DEMO_SUBJECTS ?= 2
DEMO_ANAT_VOXEL_MM ?= 2.0

.PHONY: install demo test test-all lint clean-demo

$(BIN)/resstore: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c requirements.lock -e ".[test]"
	touch $@

install: $(BIN)/resstore

demo/bids/dataset_description.json: | $(BIN)/resstore
	$(BIN)/resstore simulate --out demo --subjects $(DEMO_SUBJECTS) --seed 42 \
		--anat-voxel-mm $(DEMO_ANAT_VOXEL_MM) --manual-mask-fraction 0.25

demo: $(BIN)/resstore demo/bids/dataset_description.json
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) \
		--configfile configs/demo.yaml --keep-going --rerun-incomplete
	@echo
	@echo "Feature table:    demo/derivatives/resstore/features.tsv (dictionary: features.json)"
	@echo "Session inventory: demo/derivatives/resstore/sessions.tsv"
	@echo "QC figures:        demo/derivatives/resstore/sub-*/ses-*/figures/"
	@echo "Ground truth:      demo/truth/ (allocation key: demo/allocation.tsv)"

# make test: everything but the `slow` tests (whole-pipeline runs on a phantom
# trial, minutes each), except the SLURM test (`cluster`): it runs where a SLURM
# answers (CI starts one with .ci/slurm/start.sh) and skips elsewhere.
# make test-all: every test.
test: $(BIN)/resstore
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m "not slow or cluster" --durations=25

test-all: $(BIN)/resstore
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

# lint needs no data: the workflow is parsed over an empty BIDS dataset
lint: $(BIN)/resstore
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint --directory $$(mktemp -d) \
		--snakefile $(abspath Snakefile) \
		--config bids_dir=$(abspath tests/data/empty_bids) output_dir=$$(mktemp -d)

clean-demo:
	rm -rf demo
