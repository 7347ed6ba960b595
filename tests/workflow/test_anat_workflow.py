"""Anatomy rules in the DAG (`snakemake -n -p`): the lesion mask and lesion
side feed the SyN, segmentation and thickness; follow-ups go through baseline."""

from __future__ import annotations

import re

from tests.workflow.conftest import snakemake


def _commands(stdout: str, command: str) -> list[str]:
    return [line for line in stdout.splitlines() if f"resstore {command} " in line]


def _target(out, subject, session):
    return (f"{out}/sub-{subject}/ses-{session}/anat/"
            f"sub-{subject}_ses-{session}_space-T1w_desc-dk_thickness.tsv")


def test_follow_up_registers_to_baseline_and_uses_lesion_outputs(tiny_trial, tmp_path):
    out = tmp_path / "out"
    proc = snakemake(tmp_path, {"bids_dir": str(tiny_trial / "bids"), "output_dir": str(out)},
                     "-n", "-p", "--cores", "1", _target(out, "001", "m06"))
    register = _commands(proc.stdout, "anat-register")
    assert len(register) == 2  # the follow-up needs the baseline's SyN
    follow = next(c for c in register if "ses-m06_desc-preproc" in c)
    base = next(c for c in register if "ses-baseline_desc-preproc" in c.split("--baseline")[0])
    assert "--baseline-mni-to-t1w" in follow and "ses-baseline" in follow.split("--baseline-preproc")[1]
    assert "--baseline-preproc" not in base
    assert re.search(r"--lesion-mask \S+ses-m06_space-T1w_desc-lesion_mask", follow)
    segment = _commands(proc.stdout, "anat-segment")
    assert segment and "--lesion-mask" in segment[0]
    thickness = _commands(proc.stdout, "anat-thickness")
    assert thickness and "--lesion-side" in thickness[0] and "desc-lesionside" in thickness[0]
    # the affine brain mask (input of the lesion stream) never needs the lesion mask: no cycle
    preproc = _commands(proc.stdout, "anat-preproc")
    assert preproc and all("space-T1w_desc-lesion_mask" not in c for c in preproc)


def test_session_without_baseline_registers_directly(tiny_trial, tmp_path):
    out = tmp_path / "out"
    proc = snakemake(tmp_path, {"bids_dir": str(tiny_trial / "bids"), "output_dir": str(out),
                                "sessions": ["m06"]},
                     "-n", "-p", "--cores", "1", _target(out, "001", "m06"))
    register = _commands(proc.stdout, "anat-register")
    assert len(register) == 1 and "--baseline-preproc" not in register[0]
