"""The lesion side of a subject and the one ipsilesional / contralesional mapping.

The lesion stream writes one JSON per subject (``LESION_SIDE`` in
``workflow/rules/common.smk``, from the baseline lesion; ``participants.tsv``
``lesion_side`` overrides). Every stream reads it with :func:`read_lesion_side`
and maps hemispheres to roles with :class:`LesionSide`; nothing else reads the
file or codes the mapping.

Rule: the ipsilesional hemisphere is the lesion side when it is left or
right; for a bilateral lesion it is the hemisphere holding more of the
reference lesion; for ``none`` or ``unknown`` there is none, and every
ipsilesional/contralesional feature is NA (left/right features are still filled).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import PipelineInputError
from pipeline.io import read_json

HEMISPHERES = ("left", "right")
ROLES = ("ipsilesional", "contralesional")
SIDES = ("left", "right", "bilateral", "none", "unknown")


def other(hemisphere: str) -> str:
    """The opposite hemisphere."""
    return {"left": "right", "right": "left"}[hemisphere]


@dataclass(frozen=True)
class LesionSide:
    """A subject's lesion side.

    Attributes
    ----------
    side : str
        One of :data:`SIDES`.
    ipsilesional : str or None
        ``left`` or ``right`` (see the module rule), None when not lateralised.
    source : str
        Where the side came from (``participants.tsv``, ``lesion mask ses-X``, ...).
    """

    side: str = "unknown"
    ipsilesional: str | None = None
    source: str = "unavailable"

    def __post_init__(self):
        if self.side not in SIDES:
            raise ValueError(f"lesion side must be one of {SIDES}, got {self.side!r}")
        if self.ipsilesional not in (None, *HEMISPHERES):
            raise ValueError(f"ipsilesional hemisphere must be left/right/None, got "
                             f"{self.ipsilesional!r}")

    @classmethod
    def from_side(cls, side: str, *, left_ml=None, right_ml=None, source: str = "") -> LesionSide:
        """Apply the module rule to a side (and, for a bilateral lesion, its volumes)."""
        ipsi = side if side in HEMISPHERES else None
        if side == "bilateral" and left_ml is not None and right_ml is not None:
            ipsi = "left" if left_ml >= right_ml else "right"
        return cls(side, ipsi, source or "unavailable")

    @property
    def lateralised(self) -> bool:
        return self.ipsilesional is not None

    @property
    def contralesional(self) -> str | None:
        return other(self.ipsilesional) if self.ipsilesional else None

    def hemisphere(self, role: str) -> str | None:
        """``left``/``right`` of a role (None when not lateralised)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        return self.ipsilesional if role == "ipsilesional" else self.contralesional

    def role(self, hemisphere: str) -> str | None:
        """``ipsilesional``/``contralesional`` of a hemisphere (None when not lateralised)."""
        if not self.lateralised:
            return None
        return "ipsilesional" if hemisphere == self.ipsilesional else "contralesional"

    def roles(self) -> dict:
        """{role: hemisphere} (empty when not lateralised)."""
        return {r: self.hemisphere(r) for r in ROLES} if self.lateralised else {}


def read_lesion_side(path) -> LesionSide:
    """The lesion stream's per-subject side JSON (``unknown`` when no path is given)."""
    if not path:
        return LesionSide()
    data = read_json(path)
    side = data.get("lesion_side")
    if side not in SIDES:
        raise PipelineInputError(path, f"lesion_side must be one of {', '.join(SIDES)}, "
                                       f"got {side!r}")
    try:
        if "ipsilesional_hemisphere" not in data:  # a hand-written file: apply the rule
            return LesionSide.from_side(side, left_ml=data.get("lesion_volume_left_ml"),
                                        right_ml=data.get("lesion_volume_right_ml"),
                                        source=data.get("source", ""))
        return LesionSide(side, data.get("ipsilesional_hemisphere"), data.get("source", ""))
    except ValueError as exc:
        raise PipelineInputError(path, str(exc)) from exc


def as_lesion_side(value) -> LesionSide:
    """A :class:`LesionSide` from itself, a side string (the module rule) or None."""
    if isinstance(value, LesionSide):
        return value
    if value is None:
        return LesionSide()
    return LesionSide.from_side(str(value))
