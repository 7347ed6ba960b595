"""The DWI stream of one session, step by step, as pure functions.

:func:`preprocess` runs denoising -> Gibbs removal -> motion / eddy-current
correction against a leave-one-out prediction (b-vectors rotated) -> brain mask ->
tensor fit on the chosen shells -> outlier slices replaced by the prediction ->
refit on every volume, and returns the maps and
QC numbers; :mod:`pipeline.dwi.commands` only reads and writes files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.dwi import preprocess as pp
from pipeline.dwi.correct import correct, resample_series
from pipeline.dwi.gradients import DwiInput
from pipeline.dwi.sdc import FieldResult, estimate_field
from pipeline.dwi.tensor import MD_UNIT_SCALE, TensorMaps, fit_tensor, outlier_slices
from pipeline.validate import shell_of, shells

logger = logging.getLogger(__name__)


@dataclass
class PreprocOptions:
    """Options of :func:`preprocess` (config section ``dwi``).

    Attributes
    ----------
    denoise : {"mppca", "patch2self", "none"}
    denoise_patch_radius : int
        MP-PCA patch half-width (voxels).
    rician_correction : bool
        Subtract the Rician noise floor with the MP-PCA sigma map (only with
        MP-PCA), see :func:`pipeline.dwi.preprocess.rician_correct`.
    gibbs : bool
        Remove Gibbs ringing (slice-wise, along the acquisition axis z). Off by
        default: Kellner's method assumes full k-space coverage, and on data
        without ringing it only smooths (CST FA -0.013 on the phantom).
    motion_correction : {"eddy", "rigid", "none"}
        Every diffusion-weighted volume registered to its leave-one-out tensor
        prediction (:mod:`pipeline.dwi.correct`): "eddy" rigid motion plus eddy
        currents along the phase-encoding axis, "rigid" motion only.
    motion_rounds : int
        Prediction -> registration rounds.
    anchor_max_b_step : float
        Largest b-value step across which a shell is anchored to the level below.
    motion_iterations, motion_shrink_factors : tuple of int
        Least-squares schedule per level (iterations, cost-voxel strides).
    tensor_fit : {"WLS", "OLS", "RESTORE"}
    outlier_slice_z : float
        Robust z of a slice's signal deficit that flags it (see
        :func:`pipeline.dwi.tensor.outlier_slices`).
    outlier_displacement_mm : float
        A volume displaced more than this (mean over the brain, mm) is flagged (QC).
    replace_outlier_slices : bool
        Outlier slices (signal dropout, from the tensor residuals) take the tensor's
        prediction and the tensor is refitted on every volume.
    dti_max_b : float
        The tensor is fitted on b=0 and the shells at or below this b-value (s/mm2):
        at high b the signal is not mono-exponential and one tensor over every shell
        reads MD low. Data with no shell at or below it are fitted on what they have,
        with a warning (log, metrics ``dwi_tensor_high_b_only``, the QC page).
    susceptibility_correction : bool
        With a reverse phase-encoding b=0 (``DwiInput.reverse_b0``), estimate the
        susceptibility field (:mod:`pipeline.dwi.sdc`) and unwarp in the one resampling.
    """

    denoise: str = "mppca"
    denoise_patch_radius: int = 2
    rician_correction: bool = True
    gibbs: bool = False
    motion_correction: str = "eddy"
    motion_iterations: tuple = (20, 20)
    motion_shrink_factors: tuple = (2, 1)
    tensor_fit: str = "WLS"
    outlier_slice_z: float = 4.0
    outlier_displacement_mm: float = 2.0
    replace_outlier_slices: bool = True
    motion_rounds: int = 2
    anchor_max_b_step: float = 2000.0
    dti_max_b: float = 1500.0
    susceptibility_correction: bool = True
    threads: int = 1

    @classmethod
    def from_schema(cls, **overrides) -> PreprocOptions:
        """The configuration schema's defaults (section ``dwi``), with ``overrides``."""
        from dataclasses import fields

        from pipeline.config import schema_default

        values = {}
        for item in fields(cls):
            if item.name == "threads":
                continue
            value = schema_default("dwi", item.name)
            values[item.name] = tuple(value) if isinstance(value, list) else value
        return cls(**{**values, **overrides})


@dataclass
class PreprocResult:
    """Everything :func:`preprocess` produces (arrays on the cropped DWI grid)."""

    affine: np.ndarray
    data: np.ndarray
    bvals: np.ndarray
    bvecs: np.ndarray
    b0: np.ndarray
    mask: np.ndarray
    tensor: TensorMaps
    motion: np.ndarray
    displacement: np.ndarray
    outliers: np.ndarray
    outlier_volumes: np.ndarray
    metrics: dict
    seconds: dict = field(default_factory=dict)
    matrices: np.ndarray | None = None  # world maps, reference point -> volume point
    sdc: FieldResult | None = None  # the susceptibility field, when corrected


def tensor_volumes(bvals: np.ndarray, max_b: float) -> tuple[np.ndarray, bool]:
    """The volumes the tensor is fitted on: b=0 and every shell at or below ``max_b``.

    Shells are rounded to 100 s/mm2 (:func:`pipeline.validate.shell_of`), so a b=1505
    of a nominal 1500 shell counts as 1500. When no diffusion-weighted volume is at or
    below ``max_b``, every volume is used and the second value is True (the caller warns).
    """
    shell = shell_of(bvals)
    is_b0 = shell == 0
    low = ~is_b0 & (shell <= max_b)
    if low.any():
        return is_b0 | low, False
    logger.warning("every diffusion-weighted shell (%s s/mm2) is above dwi.dti_max_b = %g: the "
                   "tensor is fitted on them (MD reads low and FA high against a b~1000 fit; "
                   "compare only with data of the same b)",
                   ", ".join(str(b) for b in shells(bvals) if b > 0), max_b)
    return np.ones_like(is_b0), True


def crop_affine(affine: np.ndarray, box) -> np.ndarray:
    """Affine of the sub-array ``data[box]``."""
    out = np.array(affine, dtype=float)
    out[:3, 3] = affine[:3, :3] @ [s.start for s in box] + affine[:3, 3]
    return out


def preprocess(dwi: DwiInput, options: PreprocOptions | None = None) -> PreprocResult:
    """Run the DWI preprocessing and tensor fit of one session.

    The series is first cropped to the head's bounding box (3-voxel margin),
    which every output shares (see ``PreprocResult.affine``).

    Returns
    -------
    PreprocResult
        ``metrics`` holds the QC numbers of the stream (names declared in
        ``pipeline/features/dictionaries/dwi.yaml``).
    """
    opt = options or PreprocOptions()
    seconds = {}
    cpu_start = time.process_time()
    tick = time.perf_counter()
    data = dwi.image.get_fdata(dtype=np.float32)
    is_b0 = dwi.is_b0
    box = pp.head_bounding_box(data[..., is_b0].mean(axis=-1))
    data = np.ascontiguousarray(data[box])
    affine = crop_affine(dwi.image.affine, box)
    # denoising region: the b=0 brain mask dilated by 2 voxels (MP-PCA runs only there)
    head = ndimage.binary_dilation(pp.brain_mask(data[..., is_b0].mean(axis=-1), numpass=1),
                                   iterations=2)

    data, sigma_map = pp.denoise(data, dwi.bvals, method=opt.denoise,
                                 patch_radius=opt.denoise_patch_radius, mask=head,
                                 threads=opt.threads)
    sigma = float(np.median(sigma_map[head])) if np.ndim(sigma_map) else float(sigma_map)
    if opt.rician_correction and np.isfinite(sigma):
        data = pp.rician_correct(data, sigma_map)
    seconds["denoise"] = time.perf_counter() - tick
    tick = time.perf_counter()
    if opt.gibbs:
        data = pp.remove_gibbs(data, slice_axis=2, num_processes=max(int(opt.threads), 1))
    seconds["gibbs"] = time.perf_counter() - tick
    tick = time.perf_counter()

    n = data.shape[3]
    b0 = data[..., is_b0].mean(axis=-1)
    first_mask = pp.brain_mask(b0)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    sdc, field_mm = None, None
    if dwi.reverse_b0 is not None and opt.susceptibility_correction:
        sdc = estimate_field(b0, np.ascontiguousarray(dwi.reverse_b0[box]), zooms=zooms,
                             pe_axis=dwi.pe_axis, mask=first_mask,
                             readout_ratio=dwi.readout_ratio)
        field_mm = sdc.field_mm
    seconds["sdc"] = time.perf_counter() - tick
    tick = time.perf_counter()
    if opt.motion_correction == "none":
        bvecs, matrices = dwi.bvecs.copy(), np.tile(np.eye(4), (n, 1, 1))
        motion, eddy = np.zeros((n, 6)), np.zeros((n, 3))
        rejected = 0
        not_anchored = []
        if field_mm is not None:
            data = resample_series(data, matrices, eddy, affine, dwi.pe_axis,
                                   field_mm / zooms[dwi.pe_axis])
    else:
        res = correct(data, affine, dwi.bvals, dwi.bvecs, mask=first_mask, pe_axis=dwi.pe_axis,
                      eddy=opt.motion_correction == "eddy", rounds=opt.motion_rounds,
                      iterations=opt.motion_iterations, shrink=opt.motion_shrink_factors,
                      sigmas=(1.0,) * (len(opt.motion_shrink_factors) - 1) + (0.0,),
                      anchor_max_step=opt.anchor_max_b_step, field_mm=field_mm,
                      threads=opt.threads)
        data, bvecs, matrices, eddy = res.data, res.bvecs, res.matrices, res.eddy
        rejected = res.rejected
        not_anchored = [b for b, done in res.anchored.items() if not done]
        motion = np.column_stack([matrices[:, :3, 3],
                                  np.stack([pp.euler_xyz_deg(r) for r in res.rotations])])
    seconds["motion"] = time.perf_counter() - tick
    tick = time.perf_counter()

    b0 = data[..., is_b0].mean(axis=-1)
    mask = pp.brain_mask(b0)
    displacement = pp.displacement_mm(matrices, mask, affine)
    fit, high_b_only = tensor_volumes(dwi.bvals, opt.dti_max_b)
    tensor = fit_tensor(data[..., fit], dwi.bvals[fit], bvecs[fit], mask, method=opt.tensor_fit,
                        sigma=sigma)
    # voxels filled from outside some volume's slab are missing data, not dropout
    covered = mask & pp.covered_in_every_volume(matrices, affine, mask.shape)
    outliers = np.zeros((n, mask.shape[2]), dtype=bool)  # volumes outside the fit: none
    outliers[fit] = outlier_slices(data[..., fit], tensor.predicted, covered, dwi.bvals[fit],
                                   threshold_z=opt.outlier_slice_z)
    outliers[is_b0] = False
    replaced = False
    if opt.replace_outlier_slices and outliers.any():
        # signal dropout: the slice takes the tensor's prediction, every volume stays in
        # the fit (never a run-dependent subset of volumes)
        predicted = np.zeros_like(data[..., fit])
        predicted[mask] = tensor.predicted[mask]
        columns = np.flatnonzero(fit)
        for j, i in enumerate(columns):
            for z in np.flatnonzero(outliers[i]):
                inside = mask[:, :, z]
                data[:, :, z, i][inside] = predicted[:, :, z, j][inside]
        tensor = fit_tensor(data[..., fit], dwi.bvals[fit], bvecs[fit], mask,
                            method=opt.tensor_fit, sigma=sigma)
        replaced = True
    # flagged for QC (dropout or a large displacement); none is left out of the fit
    outlier_volumes = (outliers.any(axis=1) | (displacement > opt.outlier_displacement_mm)) & ~is_b0
    seconds["tensor"] = time.perf_counter() - tick
    seconds["cpu_total"] = time.process_time() - cpu_start
    logger.info("DWI steps (s): %s", {k: round(v, 1) for k, v in seconds.items()})

    voxel_ml = float(np.prod(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))) / 1000.0
    metrics = {
        "dwi_noise_sigma": sigma,
        "dwi_motion_mean_mm": float(displacement.mean()),
        "dwi_motion_max_mm": float(displacement.max()),
        "dwi_rotation_max_deg": float(np.abs(motion[:, 3:]).max()),
        "dwi_outlier_volumes": int(outlier_volumes.sum()),
        "dwi_outlier_slices_percent": float(100.0 * outliers[~is_b0].mean()) if (~is_b0).any()
        else 0.0,
        "dwi_fit_residual_percent": float(np.median(tensor.residual[mask])) if mask.any()
        else float("nan"),
        "dwi_brain_volume_ml": float(mask.sum() * voxel_ml),
        "dwi_head_volume_ml": float(head.sum() * voxel_ml),
        "dwi_fa_brain_mean": float(tensor.fa[mask].mean()) if mask.any() else float("nan"),
        "dwi_md_brain_median_um2_ms": float(np.median(tensor.md[mask]) * MD_UNIT_SCALE)
        if mask.any() else float("nan"),
        "dwi_outlier_slices_replaced": int(outliers.sum()) if replaced else 0,
        "dwi_eddy_scale_max_percent": float(100.0 * np.abs(eddy[:, dwi.pe_axis]).max()),
        "dwi_registrations_rejected": int(rejected),
        "dwi_shells_not_anchored": ",".join(f"{b:g}" for b in not_anchored),
        "dwi_phase_encoding": dwi.pe_source,
        "dwi_tensor_shells": ",".join(str(b) for b in shells(dwi.bvals[fit])),
        "dwi_tensor_high_b_only": bool(high_b_only),
        "dwi_sdc": "reverse phase-encoding b=0" if sdc is not None else (
            "off (dwi.susceptibility_correction)" if dwi.reverse_b0 is not None
            else "none: no reverse phase-encoding b=0"),
        # 99th percentile: the largest value sits in a slice the field of view cuts (the
        # B-spline extrapolates there: 31 mm in the top slice of the real PA series)
        "dwi_sdc_field_p99_mm": float(np.percentile(np.abs(sdc.field_mm[mask]), 99))
        if sdc is not None and mask.any() else float("nan"),
        "dwi_sdc_pair_r_before": sdc.similarity_before if sdc is not None else float("nan"),
        "dwi_sdc_pair_r_after": sdc.similarity_after if sdc is not None else float("nan"),
    }
    return PreprocResult(affine, data, dwi.bvals, bvecs, b0, mask, tensor, motion, displacement,
                         outliers, outlier_volumes, metrics, seconds, matrices, sdc)


def motion_table(result: PreprocResult):
    """Per-volume QC table (pandas DataFrame)."""
    import pandas as pd

    table = pd.DataFrame(result.motion, columns=["trans_x_mm", "trans_y_mm", "trans_z_mm",
                                                 "rot_x_deg", "rot_y_deg", "rot_z_deg"])
    table.insert(0, "volume", np.arange(len(table)))
    table.insert(1, "bval", result.bvals)
    table["displacement_mm"] = result.displacement
    table["outlier_slices"] = result.outliers.sum(axis=1)
    table["outlier_volume"] = result.outlier_volumes.astype(int)
    for k, axis in enumerate("xyz"):
        table[f"bvec_{axis}_rotated"] = result.bvecs[:, k]
    return table


def image(array: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    return nib.Nifti1Image(np.asarray(array), affine)
