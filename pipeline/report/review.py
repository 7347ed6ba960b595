"""The lesion review page of one session: data for the NiiVue editor (``review.js``).

The page (``reports/sub-X_ses-Y_review.html``) is self-contained and offline: NiiVue
(vendored in ``pipeline/templates/vendor/niivue``) and every image are inlined. It
shows the session's current lesion mask (automatic, manual or an earlier review) as
an editable drawing on the FLAIR registered to the T1w and on the T1w, with the
motor-task z-map (func) and the colour FA (dwi) where those streams ran. The reviewer
paints or erases and saves the mask (uint8, the T1w grid, the T1w's header) and a
sidecar naming the rater and the mask the review started from
(:mod:`pipeline.lesion.reviewed` reads them back).

Images are embedded as gzipped NIfTI (base64) on the T1w grid cropped to the review
region, the brain mask dilated by 10 mm (the saved mask is padded back to the full
grid): T1w and FLAIR rescaled to 8 bits (0.5th-99.5th percentile of the region) and 0
outside the region (scalp, neck and background noise cost most of a page and say
nothing about the lesion), the z-map as int16 (0.01 z steps) with |z| below the
threshold set to 0, the colour FA as 8-bit RGB on its own DWI grid placed in the T1w's
world by the dwi stream's rigid (not upsampled to the T1w grid). Blinded: nothing here
reads the allocation.
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

REGION_MARGIN_MM = 10.0
"""The page shows the brain mask dilated by this much (scalp and neck are left out)."""
HEAD_FRACTION = 0.1
"""Without a brain mask: the head is the T1w above this fraction of its 99th percentile
(largest component, holes filled)."""
CROP_MARGIN_VOXELS = 2
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


def review_region(t1w: np.ndarray, zooms, *, brain: np.ndarray | None = None,
                  keep=()) -> np.ndarray:
    """Voxels the page shows: the brain mask dilated by :data:`REGION_MARGIN_MM`, else the
    head (T1w above :data:`HEAD_FRACTION` of its 99th percentile, largest component, holes
    filled, dilated by :data:`CROP_MARGIN_VOXELS`), and every ``keep`` mask (the lesion)."""
    data = np.nan_to_num(np.asarray(t1w, dtype=np.float32))
    if brain is not None and np.asarray(brain).any():
        outside = ~(np.asarray(brain) > 0)
        region = ndimage.distance_transform_edt(outside, sampling=zooms) <= REGION_MARGIN_MM
    else:
        positive = data[data > 0]
        region = data > HEAD_FRACTION * np.percentile(positive, 99) if positive.size else data > 0
        labels, n = ndimage.label(region)
        if n > 1:
            region = labels == 1 + int(np.argmax(ndimage.sum(region, labels, range(1, n + 1))))
        region = ndimage.binary_dilation(ndimage.binary_fill_holes(region),
                                         iterations=CROP_MARGIN_VOXELS)
    for mask in keep:
        region |= np.asarray(mask) > 0
    return region


def crop_box(region: np.ndarray) -> tuple[slice, slice, slice]:
    """Bounding box of ``region`` with a margin of :data:`CROP_MARGIN_VOXELS`."""
    if not region.any():
        return tuple(slice(0, n) for n in region.shape)
    idx = np.argwhere(region)
    lo = np.maximum(idx.min(0) - CROP_MARGIN_VOXELS, 0)
    hi = np.minimum(idx.max(0) + 1 + CROP_MARGIN_VOXELS, region.shape)
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


def colour_fa(fa: nib.Nifti1Image, v1: nib.Nifti1Image,
              t1w_to_dwi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour FA on the DWI grid, placed in the T1w's world (RGB 0-255: red L-R, green
    A-P, blue S-I of the T1w frame).

    Parameters
    ----------
    fa, v1 : Nifti1Image
        FA (X, Y, Z) and principal eigenvector (X, Y, Z, 3, voxel frame) on the DWI grid.
    t1w_to_dwi : ndarray (4, 4)
        World map from T1w points to DWI points (the DWI -> T1w rigid of the dwi stream).

    Returns
    -------
    rgb : ndarray (X, Y, Z, 3) uint8
        On the DWI grid (not resampled: the viewer places it by its affine).
    affine : ndarray (4, 4)
        DWI voxel -> T1w world (``inv(t1w_to_dwi) @ fa.affine``).

    Notes
    -----
    The eigenvector is turned into the DWI world frame, then into the T1w world frame
    by the inverse of the rigid's rotation; colour = |direction| x FA (x 1.6, clipped).
    """
    from pipeline.dwi.gradients import rotation_of, voxel_to_world

    world_dwi = voxel_to_world(np.asarray(v1.dataobj, np.float32), fa.affine)
    world_t1 = world_dwi @ rotation_of(t1w_to_dwi[:3, :3])  # R^-1 d = R^T d, row vectors
    rgb = np.abs(world_t1) * np.clip(np.asarray(fa.dataobj, np.float32), 0, 1)[..., None]
    return (np.clip(np.rint(rgb * 1.6 * 255), 0, 255).astype(np.uint8),
            np.linalg.inv(t1w_to_dwi) @ fa.affine)


def _on_region(region: np.ndarray, affine: np.ndarray, shape, grid_affine: np.ndarray):
    """Which voxels of another grid (``shape``, voxel -> T1w world ``grid_affine``) have
    their centre in ``region`` (on the T1w grid ``affine``)."""
    vox = np.linalg.inv(affine) @ grid_affine
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    at = np.rint(vox[:3, :3] @ ijk + vox[:3, 3:4]).astype(int)
    inside = np.all((at >= 0) & (at < np.array(region.shape)[:, None]), axis=0)
    out = np.zeros(ijk.shape[1], bool)
    out[inside] = region[at[0, inside], at[1, inside], at[2, inside]]
    return out.reshape(shape)


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
    brain_mask: str | None = None
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
    brain = None
    if inputs.brain_mask and not _failed(inputs.brain_mask):
        brain_img = read_image(inputs.brain_mask, what="brain mask")
        check_same_grid(t1w, brain_mask=brain_img)
        brain = np.asarray(brain_img.dataobj) > 0
    region = review_region(np.asarray(t1w.dataobj), t1w.header.get_zooms()[:3], brain=brain,
                           keep=[mask])
    box = crop_box(region)
    full_region, region = region, region[box]
    affine = _cropped_affine(t1w.affine, box)
    head = np.asarray(t1w.dataobj, np.float32)[box]
    volumes = [{"key": "t1w", "label": "T1w", "b64": _b64(nifti_bytes(
        to_uint8(head, region & (head > 0)) * region, affine, cal=(0, 255)))}]
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
                               "b64": _b64(nifti_bytes(to_uint8(data, region & (data > 0))
                                                       * region, affine, cal=(0, 255)))})
            layers["flair"] = True
    if inputs.zmap:
        why = _failed(inputs.zmap)
        if why:
            notes.append(f"z-map not shown: {why}")
        else:
            zimg = read_image(inputs.zmap, what="z-map on the T1w grid")
            check_same_grid(t1w, zmap=zimg)
            z = np.nan_to_num(np.asarray(zimg.dataobj, np.float32)[box])
            z[(np.abs(z) < inputs.z_threshold) | ~region] = 0
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
            rgb, rgb_affine = colour_fa(fa, v1, read_ants_affine(inputs.xfm_dwi_to_t1w))
            rgb[~_on_region(full_region, t1w.affine, rgb.shape[:3], rgb_affine)] = 0
            volumes.append({"key": "colourfa", "label": "colour FA (red L-R, green A-P, blue S-I)",
                            "rgb": True, "b64": _b64(nifti_bytes(rgb, rgb_affine, rgb=True))})
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
