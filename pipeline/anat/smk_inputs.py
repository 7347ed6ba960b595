"""Input functions of workflow/rules/anat_affine.smk and anat_syn.smk (kept out of
the .smk files so that ``snakemake --lint`` stays clean: no functions mixed with
rules). Everything they need is passed in; nothing here reads Snakemake's config
or looks at other rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class AnatInputs:
    """Input/params functions bound to the workflow's inventory and paths.

    Attributes
    ----------
    rows : dict
        (subject, session) -> inventory row (``lesion_roi`` column used).
    baseline : str
        Baseline session label.
    sessions_with : callable
        modality -> list of (subject, session).
    expand : callable
        Snakemake's ``expand``.
    paths : dict
        ``preproc``, ``brain_mask``, ``mni_to_t1w``, ``t1w_to_mni``: path
        patterns with wildcards (contracts of ``common.smk``).
    """

    rows: dict
    baseline: str
    sessions_with: Callable
    expand: Callable
    paths: dict

    def manual_lesion(self, wildcards) -> list:
        """A manual lesion ROI of the raw dataset, when the session has one."""
        value = self.rows[(wildcards.subject, wildcards.session)].get("lesion_roi")
        return [value] if value else []

    def baseline_files(self, wildcards) -> dict:
        """Follow-up visits: the baseline's preproc, mask and SyN transforms
        (the follow-up is registered rigidly to the baseline)."""
        if wildcards.session == self.baseline or (wildcards.subject, self.baseline) not in set(
                self.sessions_with("T1w")):
            return {}
        ent = {"subject": wildcards.subject, "session": self.baseline}
        return {f"baseline_{key}": self.expand(self.paths[key], **ent)[0]
                for key in ("preproc", "brain_mask", "mni_to_t1w", "t1w_to_mni")}

    @staticmethod
    def options(**flags) -> Callable:
        """Params function: ``--flag path`` for each named input that is present."""

        def build(wildcards, input):
            return " ".join(f"--{flag} {input[name]}" for name, flag in flags.items()
                            if name in input.keys() and input[name])

        return build
