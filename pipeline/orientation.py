"""The orientation contract: every image enters the pipeline through :func:`read_image`.

Contract (also in ``docs/orientation.md`` and in each derivative's sidecar)
-------------------------------------------------------------------------
1. **Affine rule** (qform/sform). As NiPreps' ``ValidateImage``: a *valid*
   sform (code > 0, non-singular, column norms equal to the header's voxel
   sizes within 0.1 %) is the affine; else a valid qform (code > 0); else the
   header's base affine (voxel sizes only, no orientation), with a warning.
   When both sform and qform are valid and map any corner of the grid more
   than :data:`QFORM_SFORM_TOLERANCE_MM` apart, the sform is used and the
   disagreement is logged and recorded in the storage record.
2. **One canonical grid.** The voxel axes are permuted and flipped to the
   closest RAS+ orientation (:func:`nibabel.as_closest_canonical`): no
   interpolation, an oblique affine keeps its rotation. Every derivative of
   the pipeline lives on the canonical grid of its source image (T1w space is
   the canonical T1w grid; DWI and BOLD spaces are their canonical grids);
   :func:`pipeline.io.save_image` refuses any other orientation.
3. **Storage-frame metadata follows.** Vectors and axis codes given in the
   stored voxel axes (b-vectors, ``PhaseEncodingDirection``,
   ``SliceEncodingDirection`` and the order of ``SliceTiming``) are carried
   into the canonical frame by the same permutation and flips (:class:`Storage`).
4. **Images drawn on another image's grid** (a manual lesion mask on the
   T1w) may be stored in any orientation and with any affine describing the
   same grid: after step 2 they must have the same shape and every grid corner
   within :data:`GRID_TOLERANCE_VOXELS` voxel of the reference's
   (:func:`on_grid_of`); otherwise a :class:`~pipeline.errors.PipelineInputError`
   gives both grids.

With ``RESSTORE_GRID_LOG`` set to a file name, every read appends one JSON
line (path, shape, affine, orientation) to that file: tests use it to check
that every array of one session is on the canonical grid.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt_lib

from pipeline import validate
from pipeline.errors import PipelineInputError

log = logging.getLogger(__name__)

CANONICAL = ("R", "A", "S")
QFORM_SFORM_TOLERANCE_MM = 1.0
GRID_TOLERANCE_VOXELS = 0.1
ORIENTATION_RULE = (
    "affine: valid sform (code > 0, voxel sizes matching pixdim), else valid qform, else the "
    "base affine (NiPreps ValidateImage rule); voxel axes permuted/flipped to the closest "
    "RAS+ orientation without interpolation (nibabel as_closest_canonical); b-vectors, "
    "phase- and slice-encoding axes and SliceTiming carried into that frame"
)
GRID_LOG_ENV = "RESSTORE_GRID_LOG"
_AXES = "ijk"


def _corners(shape, affine) -> np.ndarray:
    ijk = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                    for k in (0, shape[2] - 1)], float)
    return ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def _valid(affine, zooms) -> bool:
    linear = np.asarray(affine, float)[:3, :3]
    if not np.all(np.isfinite(linear)) or abs(np.linalg.det(linear)) < 1e-9:
        return False
    norms = np.linalg.norm(linear, axis=0)
    return bool(np.allclose(norms, np.asarray(zooms[:3], float), rtol=1e-3, atol=1e-4))


def resolve_affine(img: nib.Nifti1Image) -> tuple[np.ndarray, str, str]:
    """The affine of ``img`` by the contract's rule.

    Returns
    -------
    affine : ndarray (4, 4)
    source : {"sform", "qform", "base"}
    note : str
        Empty, or what was found wrong (disagreement, invalid form).
    """
    header = img.header
    if not isinstance(header, nib.Nifti1Header):  # e.g. Analyze: only one affine
        return np.asarray(img.affine, float), "base", ""
    zooms = header.get_zooms()
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    sform_ok = sform is not None and int(sform_code) > 0 and _valid(sform, zooms)
    qform_ok = qform is not None and int(qform_code) > 0 and _valid(qform, zooms)
    notes = []
    if sform is not None and int(sform_code) > 0 and not sform_ok:
        notes.append("sform ignored: singular or voxel sizes differ from pixdim")
    if sform_ok:
        if qform_ok:
            gap = float(np.max(np.linalg.norm(
                _corners(img.shape, sform) - _corners(img.shape, qform), axis=1)))
            if gap > QFORM_SFORM_TOLERANCE_MM:
                notes.append(f"qform and sform disagree by up to {gap:.2f} mm at the grid "
                             "corners; the sform is used")
        return np.asarray(sform, float), "sform", "; ".join(notes)
    if qform_ok:
        return np.asarray(qform, float), "qform", "; ".join(notes)
    notes.append("no valid sform or qform: voxel sizes only, orientation unknown (assumed RAS)")
    return np.asarray(header.get_base_affine(), float), "base", "; ".join(notes)


@dataclass(frozen=True)
class Storage:
    """How an image was stored, and the map of its voxel frame to the canonical one.

    Attributes
    ----------
    axcodes : tuple of str
        Orientation of the stored voxel axes (e.g. ``("L", "A", "S")``).
    transform : ndarray (3, 2)
        nibabel orientation transform, stored -> canonical: row ``a`` says
        which canonical axis stored axis ``a`` becomes and whether it flips.
    affine_source : str
        ``sform``, ``qform`` or ``base`` (see :func:`resolve_affine`).
    obliquity_deg : float
        Largest angle between a voxel axis and the nearest world axis.
    note : str
        Problems found in the header (empty when none).
    """

    axcodes: tuple
    transform: np.ndarray = field(repr=False)
    affine_source: str = "sform"
    obliquity_deg: float = 0.0
    note: str = ""

    @property
    def is_canonical(self) -> bool:
        return tuple(self.axcodes) == CANONICAL

    def vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Directions (n, 3) in the stored voxel frame -> the canonical voxel frame."""
        vectors = np.asarray(vectors, float)
        out = np.empty_like(vectors)
        for stored, (canonical, flip) in enumerate(self.transform):
            out[..., int(canonical)] = flip * vectors[..., stored]
        return out

    def axis(self, code: str) -> str:
        """A BIDS axis code of the stored frame (``i``, ``j-``, ``k``...) in the canonical frame."""
        code = str(code).strip()
        if not code or code[0] not in _AXES or code[1:] not in ("", "-", "+"):
            raise ValueError(f"not a BIDS axis code: {code!r}")
        canonical, flip = self.transform[_AXES.index(code[0])]
        negative = (code[1:] == "-") != (flip < 0)
        return _AXES[int(canonical)] + ("-" if negative else "")

    def slice_timing(self, timing, slice_code: str = "k") -> tuple[str, list]:
        """``SliceTiming`` (indexed along the stored slice axis) -> (canonical slice axis code,
        timing indexed along the canonical axis). A flipped slice axis reverses the order."""
        canonical, flip = self.transform[_AXES.index(str(slice_code)[0])]
        timing = list(timing)
        return _AXES[int(canonical)], (timing[::-1] if flip < 0 else timing)

    def sidecar(self) -> dict:
        """Fields recorded in derivative sidecars."""
        return {"StorageOrientation": "".join(self.axcodes), "CanonicalOrientation": "RAS",
                "AffineSource": self.affine_source,
                "ObliquityDegrees": round(float(self.obliquity_deg), 3),
                "OrientationRule": ORIENTATION_RULE, **({"HeaderNote": self.note} if self.note else {})}


def opposite_phase_encoding(a: str | None, b: str | None) -> bool:
    """Two BIDS ``PhaseEncodingDirection`` codes (of one frame) on one axis, of
    opposite polarity: a reverse phase-encoding pair."""
    return bool(a) and bool(b) and a[0] == b[0] and a.endswith("-") != b.endswith("-")


def obliquity_deg(affine) -> float:
    """Largest angle (degrees) between a voxel axis and its nearest world axis."""
    linear = np.asarray(affine, float)[:3, :3]
    cosines = np.abs(linear / np.linalg.norm(linear, axis=0)).max(axis=0)
    return float(np.degrees(np.arccos(np.clip(cosines, -1, 1))).max())


def storage_of(img: nib.Nifti1Image, affine=None, *, source="sform", note="") -> Storage:
    """The :class:`Storage` record of an image (its affine by default)."""
    affine = np.asarray(img.affine if affine is None else affine, float)
    stored = ornt_lib.io_orientation(affine)
    transform = ornt_lib.ornt_transform(stored, ornt_lib.axcodes2ornt(CANONICAL))
    return Storage(tuple(ornt_lib.aff2axcodes(affine)), transform, source,
                   obliquity_deg(affine), note)


def canonical(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """``img`` on the closest RAS+ grid (no interpolation); a no-op on a canonical image."""
    return nib.as_closest_canonical(img)


def read_image_storage(path, *, what: str = "image", ndim=(3,)) -> tuple[nib.Nifti1Image, Storage]:
    """Read, check and canonicalise one NIfTI file (the pipeline's one reader).

    Parameters
    ----------
    path : path
        The file (raw input or derivative).
    what : str
        Its role, for messages (``T1w``, ``DWI``, ``manual lesion mask``...).
    ndim : tuple of int
        Allowed numbers of dimensions.

    Returns
    -------
    image : nibabel.Nifti1Image
        float32 data on the canonical grid (header affine chosen by :func:`resolve_affine`).
    storage : Storage
        How the file was stored.

    Raises
    ------
    PipelineInputError
        Unreadable, truncated, wrong dimensionality, NaN/inf voxels, singular affine.
    """
    raw = validate.load_data(path, ndim=ndim, what=what)
    affine, source, note = resolve_affine(nib.load(str(path)))
    if note:
        log.warning("%s: %s", path, note)
    data = np.asarray(raw.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1 and 4 not in ndim:
        data = data[..., 0]
    storage = storage_of(raw, affine, source=source, note=note)
    image = canonical(nib.Nifti1Image(data, affine))
    _log_grid(path, image, storage)
    return image, storage


def read_image(path, *, what: str = "image", ndim=(3,)) -> nib.Nifti1Image:
    """:func:`read_image_storage` without the storage record."""
    return read_image_storage(path, what=what, ndim=ndim)[0]


def read_storage(path) -> Storage:
    """The storage record of a file from its header only (no voxel data read)."""
    header_img = nib.load(str(path))
    affine, source, note = resolve_affine(header_img)
    return storage_of(header_img, affine, source=source, note=note)


def describe_grid(img: nib.Nifti1Image) -> str:
    """One line: shape, voxel size, orientation and origin of a grid."""
    zooms = np.sqrt((np.asarray(img.affine)[:3, :3] ** 2).sum(axis=0))
    origin = np.asarray(img.affine)[:3, 3]
    return (f"shape {tuple(int(s) for s in img.shape[:3])}, voxels "
            f"{'x'.join(f'{z:.3g}' for z in zooms)} mm, "
            f"{''.join(ornt_lib.aff2axcodes(img.affine))}, origin "
            f"({', '.join(f'{o:.1f}' for o in origin)}) mm")


def grid_distance_voxels(a: nib.Nifti1Image, b: nib.Nifti1Image) -> float:
    """Largest distance between the corners of two grids of the same shape, in voxels
    of ``b`` (inf for different shapes)."""
    if tuple(a.shape[:3]) != tuple(b.shape[:3]):
        return float("inf")
    gap = np.linalg.norm(_corners(a.shape, a.affine) - _corners(b.shape, b.affine), axis=1)
    voxel = float(np.sqrt((np.asarray(b.affine)[:3, :3] ** 2).sum(axis=0)).min())
    return float(gap.max() / voxel)


def on_grid_of(img: nib.Nifti1Image, reference: nib.Nifti1Image, *, path, what: str,
               reference_name: str = "the T1w") -> nib.Nifti1Image:
    """``img`` (already canonical) on ``reference``'s grid, or a named error giving both grids.

    Accepted when the shapes agree and every grid corner is within
    :data:`GRID_TOLERANCE_VOXELS` voxel; the result then carries the
    reference's affine exactly.
    """
    gap = grid_distance_voxels(img, reference)
    if gap > GRID_TOLERANCE_VOXELS:
        far = "other shape" if not np.isfinite(gap) else f"corners up to {gap:.3g} voxels apart"
        raise PipelineInputError(
            path, f"{what} is not on the grid of {reference_name} ({far}): {what} "
                  f"{describe_grid(img)}; {reference_name} {describe_grid(reference)}. "
                  f"Draw (or resample) it on {reference_name}'s grid")
    return nib.Nifti1Image(np.asarray(img.dataobj), reference.affine)


def same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image) -> bool:
    """True when two images share one grid exactly (shape and affine to 1e-4 mm)."""
    return (tuple(a.shape[:3]) == tuple(b.shape[:3])
            and np.allclose(a.affine, b.affine, atol=1e-4))


def working_grid(img: nib.Nifti1Image, max_voxel_mm: float | None) -> nib.Nifti1Image:
    """``img`` itself, or, when any voxel edge is finer than ``max_voxel_mm``, ``img``
    resampled (linear) to an isotropic ``max_voxel_mm`` grid keeping its axes
    (:func:`resample_iso`). This bounds the memory of every T1w-space step: a 0.5 mm
    T1w has 4.1 times the voxels of a 0.8 mm one (``anat.max_voxel_mm``)."""
    if not max_voxel_mm:
        return img
    zooms = np.sqrt((np.asarray(img.affine)[:3, :3] ** 2).sum(axis=0))
    if zooms.min() >= max_voxel_mm - 1e-3:
        return img
    out = resample_iso(img, max_voxel_mm)
    log.info("working grid: %s -> %s (anat.max_voxel_mm = %g)", describe_grid(img),
             describe_grid(out), max_voxel_mm)
    return out


def check_same_grid(reference: nib.Nifti1Image, **images) -> None:
    """Raise ValueError unless every image shares ``reference``'s grid exactly
    (shape and affine to 1e-4 mm): science functions call this before mixing arrays."""
    for name, img in images.items():
        if img is None:
            continue
        if not same_grid(img, reference):
            raise ValueError(f"{name} is on another grid ({describe_grid(img)}) than the "
                             f"reference ({describe_grid(reference)}): arrays of two grids "
                             "must not be mixed")


def resample_iso(img: nib.Nifti1Image, voxel_mm: float, *,
                 interpolation: str = "linear") -> nib.Nifti1Image:
    """``img`` on an isotropic working grid of ``voxel_mm`` covering its field of view.

    The working grid keeps the image's own axis directions (an oblique image's
    grid stays oblique): a registration then samples the same voxels whatever
    the storage, instead of resampling a rotated head into a world-aligned box.
    """
    from nilearn.image import resample_img

    linear = np.asarray(img.affine, float)[:3, :3]
    direction = linear / np.linalg.norm(linear, axis=0)
    img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    with warnings.catch_warnings():
        # a 0/1 mask is resampled linearly on purpose (its caller thresholds the partial
        # volume at 0.5); nilearn's advice to use nearest does not apply
        warnings.filterwarnings("ignore", message="Resampling binary images with continuous",
                                category=UserWarning)
        return resample_img(img, target_affine=direction * float(voxel_mm),
                            interpolation=interpolation, force_resample=True, copy_header=True)


def is_canonical(affine) -> bool:
    """True when the voxel axes of ``affine`` are closest to R, A, S in that order."""
    return tuple(ornt_lib.aff2axcodes(np.asarray(affine))) == CANONICAL


def _log_grid(path, image, storage) -> None:
    target = os.environ.get(GRID_LOG_ENV)
    if not target:
        return
    record = {"path": str(Path(path).resolve()), "shape": list(image.shape),
              "affine": np.asarray(image.affine).round(6).tolist(),
              "orientation": "".join(ornt_lib.aff2axcodes(image.affine)),
              "stored": "".join(storage.axcodes)}
    with open(target, "a") as handle:
        handle.write(json.dumps(record) + "\n")
