"""How the phantom stores its images: as scanners and converters do, not only RAS.

dcm2niix and FSL-space data are usually stored LAS (radiological), some tools
write LPS, and oblique acquisitions carry a rotated affine. A pipeline that
only ever saw RAS input has never been tested, so by default every phantom
session is stored in one of :data:`STORAGES`, drawn per session:

* ``RAS``, ``LAS``, ``LPS``: the same voxels with their axes flipped (exact,
  lossless: :meth:`nibabel.Nifti1Image.as_reoriented`);
* ``oblique``: the same voxel array with an affine rotated by up to
  :data:`MAX_OBLIQUE_DEG` about the grid centre (the head then sits rotated in
  the world frame, as a tilted acquisition box puts it).

Every image of the session, its truth maps included, is stored the same way,
so truth stays in the same world space as the data. Files written in a
stored voxel frame are carried along: FSL-convention b-vectors
(:func:`store_bvecs`) and BIDS axis codes (:func:`store_axis`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt_lib
from scipy.spatial.transform import Rotation

STORAGES = ("RAS", "LAS", "LPS", "oblique")
MAX_OBLIQUE_DEG = 15.0
_AXES = "ijk"


@dataclass(frozen=True)
class StorageSpec:
    """One storage: a name and, for ``oblique``, the rotation vector (axis x angle, degrees)."""

    name: str = "RAS"
    rotvec_deg: tuple = (0.0, 0.0, 0.0)

    def __post_init__(self):
        if self.name not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {self.name!r}")

    @property
    def label(self) -> str:
        if self.name != "oblique":
            return self.name
        return f"oblique {np.linalg.norm(self.rotvec_deg):.1f} deg"

    def world_rotation(self) -> np.ndarray:
        """3x3 rotation of the world frame (identity but for ``oblique``): world-frame
        vectors of the RAS-built image (e.g. a truth eigenvector map) map through it."""
        return Rotation.from_rotvec(np.radians(self.rotvec_deg)).as_matrix()

    def apply_vectors(self, img: nib.Nifti1Image) -> nib.Nifti1Image:
        """:meth:`apply` for a 4D map of world-frame vectors (last axis x, y, z)."""
        data = np.asarray(img.dataobj, dtype=np.float32) @ self.world_rotation().T.astype(np.float32)
        return self.apply(nib.Nifti1Image(data, img.affine, img.header))

    def _transform(self) -> np.ndarray:
        """nibabel orientation transform RAS -> this storage's axis codes."""
        codes = "RAS" if self.name == "oblique" else self.name
        return ornt_lib.ornt_transform(ornt_lib.axcodes2ornt("RAS"),
                                       ornt_lib.axcodes2ornt(tuple(codes)))

    def apply(self, img: nib.Nifti1Image) -> nib.Nifti1Image:
        """``img`` (stored RAS) stored this way; the world position of every voxel is kept
        for RAS/LAS/LPS, rotated about the grid centre for ``oblique``."""
        if tuple(nib.aff2axcodes(img.affine)) != ("R", "A", "S"):
            raise ValueError("the phantom builds its images RAS; store them once")
        out = img.as_reoriented(self._transform())
        if self.name == "oblique":
            centre = out.affine[:3, :3] @ ((np.asarray(out.shape[:3]) - 1) / 2.0) + out.affine[:3, 3]
            rotation = np.eye(4)
            rotation[:3, :3] = self.world_rotation()
            shift = np.eye(4)
            shift[:3, 3] = centre
            affine = shift @ rotation @ np.linalg.inv(shift) @ out.affine
            out = nib.Nifti1Image(np.asarray(out.dataobj), affine, out.header)
        out.set_qform(out.affine, code=1)
        out.set_sform(out.affine, code=1)
        return out


def draw_storage(rng: np.random.Generator) -> StorageSpec:
    """A storage drawn uniformly from :data:`STORAGES`; oblique angles up to
    :data:`MAX_OBLIQUE_DEG` (a rotation about a random axis, 5 to 15 degrees)."""
    name = STORAGES[int(rng.integers(len(STORAGES)))]
    return _oblique(rng) if name == "oblique" else StorageSpec(name)


def storage_spec(name: str, rng: np.random.Generator) -> StorageSpec:
    """``random`` (:func:`draw_storage`) or one of :data:`STORAGES` (``oblique``: 5 to 15
    degrees about a random axis)."""
    if name == "random":
        return draw_storage(rng)
    if name == "oblique":
        return _oblique(rng)
    return StorageSpec(name)


def _oblique(rng: np.random.Generator) -> StorageSpec:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(5.0, MAX_OBLIQUE_DEG)
    return StorageSpec("oblique", tuple(float(a) for a in np.round(axis * angle, 3)))


def store_bvecs(bvecs_voxel_ras: np.ndarray, spec: StorageSpec,
                stored_affine: np.ndarray) -> np.ndarray:
    """b-vectors as a ``.bvec`` holds them for the stored image.

    Parameters
    ----------
    bvecs_voxel_ras : ndarray (3, n)
        Gradient directions in the voxel axes of the RAS-built image.
    spec : StorageSpec
    stored_affine : ndarray (4, 4)
        Affine of the stored image.

    Returns
    -------
    ndarray (3, n)
        FSL convention: the stored voxel axes, x negated when the stored
        affine's determinant is positive.
    """
    stored = np.empty_like(np.asarray(bvecs_voxel_ras, float))
    for ras_axis, (axis, flip) in enumerate(spec._transform()):
        stored[int(axis)] = flip * np.asarray(bvecs_voxel_ras, float)[ras_axis]
    if np.linalg.det(np.asarray(stored_affine)[:3, :3]) > 0:
        stored[0] = -stored[0]
    return stored


def store_axis(code: str, spec: StorageSpec) -> str:
    """A BIDS axis code (``j-``) of the RAS-built image in the stored voxel axes."""
    axis, flip = spec._transform()[_AXES.index(code[0])]
    negative = code.endswith("-") != (flip < 0)
    return _AXES[int(axis)] + ("-" if negative else "")


def restore_image(src, dst, spec: StorageSpec, *, vectors: bool = False) -> nib.Nifti1Image:
    """Copy a NIfTI file stored ``spec``'s way (same voxels, any source storage): the
    image is brought to its closest RAS grid first. Returns the stored image."""
    img = nib.as_closest_canonical(nib.load(str(src)))
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    stored = spec.apply_vectors(img) if vectors else spec.apply(img)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    nib.save(stored, str(dst))
    return stored


def restore_bvecs(bvec, image, dst, spec: StorageSpec) -> np.ndarray:
    """Write the ``.bvec`` of ``image`` (any storage) for the image stored ``spec``'s way."""
    from pipeline.dwi.gradients import fsl_to_voxel

    source = nib.load(str(image))
    # stored voxel frame of the source -> its closest RAS voxel frame -> the new storage
    record = ornt_lib.ornt_transform(ornt_lib.io_orientation(source.affine),
                                     ornt_lib.axcodes2ornt("RAS"))
    voxel = fsl_to_voxel(np.loadtxt(bvec, ndmin=2).T, source.affine)
    ras = np.empty_like(voxel)
    for axis, (new_axis, flip) in enumerate(record):
        ras[:, int(new_axis)] = flip * voxel[:, axis]
    canonical = nib.as_closest_canonical(source)
    stored_affine = spec.apply(nib.Nifti1Image(np.zeros(canonical.shape[:3], np.uint8),
                                               canonical.affine)).affine
    out = store_bvecs(ras.T, spec, stored_affine)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(dst, out, fmt="%.6f")
    return out


def restore_session(src_dir, dst_dir, spec: StorageSpec, *, rename=None) -> list[Path]:
    """Copy one BIDS session folder with every image stored ``spec``'s way.

    NIfTI files are re-stored (:func:`restore_image`); ``.bvec`` files and the
    axis codes of JSON sidecars (``PhaseEncodingDirection``,
    ``SliceEncodingDirection``) are carried into the new voxel axes; every
    other file is copied. ``rename`` maps old to new file-name fragments (e.g.
    ``{"sub-001": "sub-las"}``). Returns the files written.

    Notes
    -----
    Sidecar ``SliceTiming`` stays as it is: the storages flip only the first two
    voxel axes, never the slice axis.
    """
    import json
    import shutil

    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    written = []

    def target(path: Path) -> Path:
        name = path.relative_to(src_dir).as_posix()
        for old, new in (rename or {}).items():
            name = name.replace(old, new)
        out = dst_dir / name
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    for path in sorted(p for p in src_dir.rglob("*") if p.is_file()):
        out = target(path)
        if path.name.endswith((".nii", ".nii.gz")):
            restore_image(path, out, spec)
        elif path.suffix == ".bvec":
            image = next(path.parent.glob(path.name.replace(".bvec", ".nii*")))
            restore_bvecs(path, image, out, spec)
        elif path.suffix == ".json":
            data = json.loads(path.read_text())
            image = list(path.parent.glob(path.name.replace(".json", ".nii*")))
            if image:
                source = nib.load(str(image[0]))
                record = ornt_lib.ornt_transform(ornt_lib.io_orientation(source.affine),
                                                 ornt_lib.axcodes2ornt("RAS"))
                for key in ("PhaseEncodingDirection", "SliceEncodingDirection"):
                    if key in data:
                        axis, flip = record[_AXES.index(data[key][0])]
                        ras_code = _AXES[int(axis)] + ("-" if data[key].endswith("-") != (flip < 0)
                                                       else "")
                        data[key] = store_axis(ras_code, spec)
            out.write_text(json.dumps(data, indent=2))
        else:
            shutil.copyfile(path, out)
        written.append(out)
    return written


def one_session_dataset(sources: dict, subject: str, session: str, out_bids) -> Path:
    """A BIDS dataset holding one phantom session several times, one subject per copy.

    Parameters
    ----------
    sources : dict
        ``label -> (bids root, StorageSpec)``: subject ``sub-<label>`` is
        ``sub-<subject>/ses-<session>`` of that root re-stored by the spec (storage
        copies of one root, or rescans: roots simulated with ``TrialSpec.rescan``).
    subject, session : str
        Labels without ``sub-`` / ``ses-``.
    out_bids : path
        The new dataset (participants.tsv from the first root, with ``lesion_side``
        n/a so that the side comes from the lesion mask).
    """
    import pandas as pd

    out_bids = Path(out_bids)
    first = Path(next(iter(sources.values()))[0])
    for name in ("dataset_description.json", "README", "task-motor_bold.json"):
        if (first / name).exists():
            (out_bids / name).parent.mkdir(parents=True, exist_ok=True)
            (out_bids / name).write_bytes((first / name).read_bytes())
    participants = pd.read_csv(first / "participants.tsv", sep="\t")
    row = participants.set_index("participant_id").loc[f"sub-{subject}"].to_dict()
    rows = []
    for label, (root, spec) in sources.items():
        restore_session(Path(root) / f"sub-{subject}" / f"ses-{session}",
                        out_bids / f"sub-{label}" / f"ses-{session}", spec,
                        rename={f"sub-{subject}": f"sub-{label}"})
        rows.append({**row, "participant_id": f"sub-{label}", "lesion_side": "n/a"})
    pd.DataFrame(rows).to_csv(out_bids / "participants.tsv", sep="\t", index=False)
    return out_bids
