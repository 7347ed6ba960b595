"""Input functions of workflow/rules/anat.smk (kept out of the .smk so that
``snakemake --lint`` stays clean: no functions mixed with rules).

Snakemake calls these when it builds the DAG, after every rule file has been
included, so ``lesion_ready()`` sees the flag that lesion.smk sets
(``LESION_STREAM_READY = True``) even though anat.smk is included first.
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
    lesion_ready : callable
        () -> bool: does the workflow produce the lesion stream's outputs?
    paths : dict
        ``lesion_mask``, ``lesion_side``, ``preproc``, ``brain_mask``,
        ``mni_to_t1w``, ``t1w_to_mni``: path patterns with wildcards.
    """

    rows: dict
    baseline: str
    sessions_with: Callable
    expand: Callable
    lesion_ready: Callable
    paths: dict

    def lesion_mask(self, wildcards) -> list:
        """The session's LESION_MASK once the lesion stream provides it, else nothing."""
        if not self.lesion_ready():
            return []
        return self.expand(self.paths["lesion_mask"], subject=wildcards.subject,
                           session=wildcards.session)

    def lesion_side(self, wildcards) -> list:
        """The lesion stream's per-subject lesion side JSON, once it exists."""
        if not self.lesion_ready():
            return []
        return self.expand(self.paths["lesion_side"], subject=wildcards.subject)

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
