"""Input and params functions of workflow/rules/lesion.smk (kept out of the .smk file).

Everything the functions need is passed in explicitly; nothing here reads
Snakemake's config.
"""

from __future__ import annotations

from collections.abc import Callable


class LesionInputs:
    """Factory of Snakemake input/params functions for the lesion rules.

    Parameters
    ----------
    rows : dict
        (subject, session) -> inventory row (dict with ``flair``, ``lesion_roi``...).
    sessions : list of str
        Session labels in visit order.
    baseline : str
        Baseline session label.
    has : callable
        ``has(modality, wildcards)`` -> bool (the modality runs in this session).
    sessions_with : callable
        ``sessions_with(modality)`` -> list of (subject, session).
    expand : callable
        Snakemake's ``expand``.
    """

    def __init__(self, *, rows: dict, sessions, baseline: str, has: Callable,
                 sessions_with: Callable, expand: Callable):
        self.rows, self.sessions, self.baseline = rows, list(sessions), baseline
        self._has, self._sessions_with = has, sessions_with
        self._expand = expand

    def optional_raw(self, column: str, modality: str | None = None) -> Callable:
        """Input function: [file] when the session has it (and ``modality`` runs), else []."""

        def lookup(wildcards):
            value = self.rows[(wildcards.subject, wildcards.session)][column]
            if not value or (modality and not self._has(modality, wildcards)):
                return []
            return [value]

        return lookup

    def baseline_dwi(self, wildcards) -> dict:
        """The raw DWI series (dwi, bval, bvec) of a baseline session that has one, else {}."""
        row = self.rows[(wildcards.subject, wildcards.session)]
        if wildcards.session != self.baseline or not self._has("dwi", wildcards):
            return {}
        return {"dwi": row["dwi"], "bval": row["bval"], "bvec": row["bvec"]}

    def reference_session(self, subject: str) -> str | None:
        """Session whose lesion decides the side: the baseline when it has a FLAIR or
        a manual mask, else the first such session, else the first with a T1w."""
        t1w = set(self._sessions_with("T1w"))
        flair = set(self._sessions_with("FLAIR"))
        with_t1w = [s for s in self.sessions if (subject, s) in t1w]
        informative = [s for s in with_t1w
                       if (subject, s) in flair or self.rows[(subject, s)]["lesion_roi"]]
        ordered = sorted(informative, key=lambda s: s != self.baseline)
        return (ordered or with_t1w or [None])[0]

    def session_path(self, path: str, which: str) -> Callable:
        """Input function: ``path`` of the subject's reference session (``which="side"``)
        or of the baseline session for a later session (``which="baseline"``)."""

        def lookup(wildcards):
            if which == "side":
                session = self.reference_session(wildcards.subject)
            else:
                has_baseline = (wildcards.subject, self.baseline) in set(
                    self._sessions_with("T1w"))
                session = (self.baseline if wildcards.session != self.baseline and has_baseline
                           else None)
            return [] if session is None else self._expand(path, subject=wildcards.subject,
                                                           session=session)

        return lookup

    def optional_sidecar(self, column: str) -> Callable:
        """Input function: [JSON sidecar of the file in ``column``] when there is one, else []."""
        from pipeline.io import sidecar_path

        raw = self.optional_raw(column)
        return lambda wildcards: [str(sidecar_path(path)) for path in raw(wildcards)]

    @staticmethod
    def option(flag: str, name: str) -> Callable:
        """Params function: ``flag <path>`` when the optional input ``name`` is given."""
        return lambda wildcards, input: f"{flag} {input[name]}" if input[name] else ""
