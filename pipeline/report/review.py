"""The lesion review page of one session: data for the NiiVue editor (``review.js``).

The page (``reports/sub-X_ses-Y_review.html``) is self-contained and offline: NiiVue
(vendored in ``pipeline/templates/vendor/niivue``) and every image are inlined. It
shows the session's current lesion mask (automatic, manual or an earlier review) as
an editable drawing on the FLAIR registered to the T1w and on the T1w, with the
motor-task z-map (func) and the colour FA (dwi) on the T1w grid where those streams
ran. The reviewer paints or erases and saves the mask (uint8, the T1w grid, the
T1w's header) and a sidecar naming the rater and the mask the review started from
(:mod:`pipeline.lesion.reviewed` reads them back).

Images are embedded as gzipped NIfTI (base64) on the T1w grid cropped to the head
(the saved mask is padded back to the full grid): T1w and FLAIR rescaled to 8 bits
(0.5th-99.5th percentile of the head), the z-map as int16 (0.01 z steps) with
|z| below the threshold set to 0, the colour FA as RGB (8 bits). Blinded: nothing
here reads the allocation.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline import __version__, status
from pipeline.io import read_json, sidecar_path
from pipeline.lesion.reviewed import reviewed_name, voxel_sha256
from pipeline.orientation import check_same_grid, read_image

log = logging.getLogger(__name__)

HEAD_FRACTION = 0.05
"""A voxel belongs to the head (crop box) when the T1w exceeds this fraction of its 99th percentile."""
CROP_MARGIN_VOXELS = 3
RATER_KEY = "resstore-qc:rater"
"""Browser storage key of the rater's name, shared with the QC pages (report.js)."""


def review_page_name(participant_id: str, session: str) -> str:
    """File name of a session's review page, ``sub-X_ses-V_review.html``."""
    return f"{participant_id}_ses-{session}_review.html"


def to_uint8(data: np.ndarray, where: np.ndarray | None = None, *, low: float = 0.5,
             high: float = 99.5) -> np.ndarray:
    """Intensities rescaled to 0-255 between two percentiles of the voxels in ``where``."""
    data = np.nan_to_num(np.asarray(data, dtype=np.float32))
    values = data[where] if where is not None and where.any() else data[data > 0]
    if values.size == 0:
        return np.zeros(data.shape, np.uint8)
    lo, hi = np.percentile(values, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip(np.rint((data - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def crop_box(t1w: np.ndarray, *keep: np.ndarray) -> tuple[slice, slice, slice]:
    """Bounding box of the head (and of every ``keep`` mask), with a margin."""
    data = np.nan_to_num(np.asarray(t1w, dtype=np.float32))
    positive = data[data > 0]
    head = data > HEAD_FRACTION * np.percentile(positive, 99) if positive.size else data > 0
    union = head.copy()
    for mask in keep:
        union |= np.asarray(mask) > 0
    if not union.any():
        return tuple(slice(0, n) for n in data.shape)
    idx = np.argwhere(union)
    lo = np.maximum(idx.min(0) - CROP_MARGIN_VOXELS, 0)
    hi = np.minimum(idx.max(0) + 1 + CROP_MARGIN_VOXELS, data.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _cropped_affine(affine: np.ndarray, box) -> np.ndarray:
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    return affine @ shift


def nifti_bytes(data: np.ndarray, affine: np.ndarray, *, slope: float | None = None,
                rgb: bool = False, cal: tuple[float, float] | None = None) -> bytes:
    """A NIfTI-1 image as gzipped bytes (deterministic: no time stamp in the gzip header)."""
    if rgb:
        dtype = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
        data = np.ascontiguousarray(data).view(dtype).reshape(data.shape[:3])
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    if cal is not None:
        img.header["cal_min"], img.header["cal_max"] = cal
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as handle:
        handle.write(img.to_bytes())
    return out.getvalue()


def mask_header(reference: nib.Nifti1Image) -> bytes:
    """The 352-byte NIfTI-1 header (with the empty extension flag) of a uint8 mask on
    ``reference``'s full grid: the page appends the voxels and gzips the result."""
    img = nib.Nifti1Image(np.zeros(reference.shape[:3], np.uint8), reference.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_slope_inter(1.0, 0.0)
    img.header["descrip"] = b"lesion mask reviewed in the resstore QC viewer"
    whole = img.to_bytes()
    return whole[: len(whole) - int(np.prod(reference.shape[:3]))]


def colour_fa_on_grid(fa: nib.Nifti1Image, v1: nib.Nifti1Image, t1w_to_dwi: np.ndarray,
                      reference: nib.Nifti1Image) -> np.ndarray:
    """Colour FA (RGB 0-255: red L-R, green A-P, blue S-I of the T1w frame) on ``reference``'s grid.

    Parameters
    ----------
    fa, v1 : Nifti1Image
        FA (X, Y, Z) and principal eigenvector (X, Y, Z, 3, voxel frame) on the DWI grid.
    t1w_to_dwi : ndarray (4, 4)
        World map from T1w points to DWI points (the DWI -> T1w rigid of the dwi stream).
    reference : Nifti1Image
        The T1w grid.

    Notes
    -----
    FA is sampled trilinearly, the eigenvector at the nearest DWI voxel, turned into
    the DWI world frame and then into the T1w world frame by the rigid's rotation.
    """
    from pipeline.dwi.gradients import rotation_of, voxel_to_world

    vox = np.linalg.inv(fa.affine) @ t1w_to_dwi @ reference.affine
    shape = reference.shape[:3]
    fa_t1 = ndimage.affine_transform(np.asarray(fa.dataobj, np.float32), vox[:3, :3],
                                     offset=vox[:3, 3], output_shape=shape, order=1, cval=0.0)
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    at = np.rint(vox[:3, :3] @ grid + vox[:3, 3:4]).astype(int)
    inside = np.all((at >= 0) & (at < np.array(fa.shape[:3])[:, None]), axis=0)
    vectors = np.zeros((grid.shape[1], 3), np.float32)
    v1_data = np.asarray(v1.dataobj, np.float32)
    vectors[inside] = v1_data[at[0, inside], at[1, inside], at[2, inside]]
    world_dwi = voxel_to_world(vectors, fa.affine)
    world_t1 = world_dwi @ rotation_of(t1w_to_dwi[:3, :3])  # R^-1 d = R^T d, row vectors
    rgb = np.abs(world_t1).reshape(*shape, 3) * np.clip(fa_t1, 0, 1)[..., None]
    return np.clip(np.rint(rgb * 1.6 * 255), 0, 255).astype(np.uint8)


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mask_source(path) -> str:
    """``automatic``, ``manual``, ``reviewed`` or ``none``: from the lesion mask's sidecar."""
    side = sidecar_path(path)
    try:
        return str(read_json(side).get("Parameters", {}).get("source", "unknown"))
    except (OSError, ValueError):
        return "unknown"


@dataclass
class ReviewInputs:
    """Paths of one session's review page (optional layers None where the stream did not run)."""

    t1w: str
    mask: str
    flair: str | None = None
    zmap: str | None = None
    z_threshold: float = 3.1
    fa: str | None = None
    v1: str | None = None
    xfm_dwi_to_t1w: str | None = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _failed(path) -> str | None:
    record = status.read_record(path) if path else None
    return status.describe(record) if record else None


def review_context(participant_id: str, session: str, inputs: ReviewInputs, *,
                   qc_page: str) -> dict:
    """Everything the review template and ``review.js`` need.

    Returns
    -------
    dict
        ``unavailable`` (why no editor can be shown, or None), ``layers`` (notes on
        the optional layers) and ``page_data`` (embedded JSON: volumes as base64
        NIfTI, the mask, the saved mask's header, crop box, ``started_from``).
    """
    subject, ses = participant_id.removeprefix("sub-"), session
    base = {"participant_id": participant_id, "session": session, "qc_page": qc_page,
            "version": __version__, "unavailable": None, "notes": [],
            "save_names": {"mask": reviewed_name(subject, ses),
                           "sidecar": reviewed_name(subject, ses, ".json")}}
    for path, what in ((inputs.t1w, "T1w"), (inputs.mask, "lesion mask")):
        why = _failed(path)
        if why:
            return {**base, "unavailable": f"the {what} of this session was not made ({why})",
                    "page_data": {"page": "review", "unavailable": True}}
    t1w = read_image(inputs.t1w, what="T1w")
    mask_img = read_image(inputs.mask, what="lesion mask")
    check_same_grid(t1w, lesion_mask=mask_img)
    mask = np.asarray(mask_img.dataobj) > 0
    box = crop_box(np.asarray(t1w.dataobj), mask)
    affine = _cropped_affine(t1w.affine, box)
    head = np.asarray(t1w.dataobj, np.float32)[box]
    head_mask = head > HEAD_FRACTION * np.percentile(head[head > 0], 99) if (head > 0).any() else None
    volumes = [{"key": "t1w", "label": "T1w", "b64": _b64(nifti_bytes(
        to_uint8(head, head_mask), affine, cal=(0, 255)))}]
    notes = []
    layers = {"flair": None, "zmap": None, "colourfa": None}
    if inputs.flair:
        why = _failed(inputs.flair)
        if why:
            notes.append(f"FLAIR not shown: {why}")
        else:
            flair = read_image(inputs.flair, what="FLAIR registered to the T1w")
            check_same_grid(t1w, flair=flair)
            data = np.asarray(flair.dataobj, np.float32)[box]
            volumes.insert(0, {"key": "flair", "label": "FLAIR (registered to the T1w)",
                               "b64": _b64(nifti_bytes(to_uint8(data, data > 0), affine,
                                                       cal=(0, 255)))})
            layers["flair"] = True
    if inputs.zmap:
        why = _failed(inputs.zmap)
        if why:
            notes.append(f"z-map not shown: {why}")
        else:
            zimg = read_image(inputs.zmap, what="z-map on the T1w grid")
            check_same_grid(t1w, zmap=zimg)
            z = np.nan_to_num(np.asarray(zimg.dataobj, np.float32)[box])
            z[np.abs(z) < inputs.z_threshold] = 0
            zq = np.clip(np.rint(z * 100), -32767, 32767).astype(np.int16)
            peak = float(np.abs(z).max())
            volumes.append({"key": "zmap", "label": f"z-map (|z| >= {inputs.z_threshold:g})",
                            "overlay": True, "threshold": inputs.z_threshold,
                            "max": max(peak, inputs.z_threshold + 1.0),
                            "b64": _b64(nifti_bytes(zq, affine, slope=0.01))})
            layers["zmap"] = {"peak": peak, "threshold": inputs.z_threshold}
    if inputs.fa and inputs.v1 and inputs.xfm_dwi_to_t1w:
        why = next(filter(None, (_failed(p) for p in (inputs.fa, inputs.v1,
                                                      inputs.xfm_dwi_to_t1w))), None)
        if why:
            notes.append(f"colour FA not shown: {why}")
        else:
            from pipeline.antsio import read_ants_affine

            fa = read_image(inputs.fa, what="FA")
            v1 = read_image(inputs.v1, what="V1", ndim=(4,))
            rgb = colour_fa_on_grid(fa, v1, read_ants_affine(inputs.xfm_dwi_to_t1w), t1w)
            volumes.append({"key": "colourfa", "label": "colour FA (red L-R, green A-P, blue S-I)",
                            "rgb": True, "b64": _b64(nifti_bytes(rgb[box], affine, rgb=True))})
            layers["colourfa"] = True
    voxel_ml = float(abs(np.linalg.det(t1w.affine[:3, :3])) / 1000.0)
    inside = mask[box]
    started = {"File": Path(inputs.mask).name, "SHA256": file_sha256(inputs.mask),
               "VoxelSHA256": voxel_sha256(mask), "Source": mask_source(inputs.mask),
               "Voxels": int(mask.sum())}
    lesion_at = (np.argwhere(inside).mean(0) if inside.any()
                 else (np.array(inside.shape) - 1) / 2.0)
    page_data = {
        "page": "review", "participant_id": participant_id, "session": session,
        "rater_key": RATER_KEY,
        "volumes": volumes,
        "mask_b64": _b64(nifti_bytes(inside.astype(np.uint8), affine)),
        "mask_header_b64": _b64(mask_header(t1w)),
        "full_shape": [int(n) for n in t1w.shape[:3]],
        "crop_start": [int(s.start) for s in box],
        "crop_shape": [int(s.stop - s.start) for s in box],
        "voxel_ml": voxel_ml, "focus_voxel": [int(round(v)) for v in lesion_at],
        "started_from": started, "save_names": base["save_names"],
        "software": {"resstore-pipeline": __version__},
    }
    log.info("%s ses-%s: review page, crop %s of %s, %d mask voxels, layers %s",
             participant_id, session, page_data["crop_shape"], page_data["full_shape"],
             started["Voxels"], [v["key"] for v in volumes])
    return {**base, "notes": notes, "layers": layers, "started_from": started,
            "voxel_ml": voxel_ml, "page_data": page_data}
