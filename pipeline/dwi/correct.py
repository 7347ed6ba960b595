"""Motion and eddy-current correction against a model prediction (valid at any b).

Each diffusion-weighted volume is registered to a target predicted *for its own
gradient* from the other volumes (leave-one-out), as FSL eddy (Andersson &
Sotiropoulos 2016, NeuroImage 125:1063) and QSIPrep's SHORELine (Cieslak et al. 2021,
Nat Methods 18:775) do, never to b=0: the target has the volume's own contrast, so
an eddy-current shift is not read as head motion, at b=1000 as at b=2500 (where a
b=0 target has the opposite CSF contrast).

The predictor is a log-linear diffusion tensor per shell fitted by least squares; its
leave-one-out prediction comes from the hat matrix in closed form (one fit per shell
and round, not one per volume): for the linear model ``y = X beta`` with hat matrix
``H``, the prediction of ``y_i`` without ``y_i`` is ``(yhat_i - H_ii y_i) / (1 - H_ii)``
(Cook & Weisberg 1982). The registration is ANTs' with Mattes mutual information
(fixed seed): mean squares, the natural metric between a volume and its prediction,
diverged on a real b=2500 volume with signal dropout (16 mm), Mattes did not. Its
12-parameter affine is reduced to the eddy-current model: a rigid head motion
followed by a displacement along the phase-encoding axis that is linear in position
(shear and scale along that axis plus an offset; Jezzard et al. 1998), projected about
the brain's centre; the rigid part alone rotates the b-vector (Leemans & Jones 2009),
and the Jacobian of the eddy-current part modulates the intensity, as eddy does.
Before the first prediction, every volume is aligned rigidly to its shell's mean (a
sharp target of its own contrast without angular detail): a prediction from a series
still misaligned by a few degrees is blurred, and the head rotations were then
recovered only by about a third. Then ``rounds`` rounds, each predicting from the
series the previous one corrected and registering the input volume afresh. Last, each
shell's mean corrected volume is registered rigidly to the mean b=0 (Mattes MI, across
contrast, once per shell) and that map is composed with every volume's, so the series
is in the frame of the first b=0.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.dwi.gradients import rotate_bvecs

logger = logging.getLogger(__name__)

LOG_FLOOR = 1e-3  # relative to the b=0 mean: log of the signal floored here
MAX_LEVERAGE = 0.95  # leverage capped here: a near-interpolating fit stays bounded
MAX_JUMP_VOXELS = 1.0  # a refined map moving the brain more than this from round 0 diverged
ANCHOR_SCHEDULE = ((200,), (1,), (0.0,))  # iterations, shrink, smoothing of the shell anchor


def tensor_design(bvals: np.ndarray, bvecs: np.ndarray) -> np.ndarray:
    """Design of ``ln S = ln S0 - b g^T D g`` (columns: 1, Dxx, Dyy, Dzz, Dxy, Dxz, Dyz)."""
    b = np.asarray(bvals, float)[:, None]
    g = np.asarray(bvecs, float)
    return np.column_stack([np.ones(len(b)), -b[:, 0] * g[:, 0] ** 2, -b[:, 0] * g[:, 1] ** 2,
                            -b[:, 0] * g[:, 2] ** 2, -2 * b[:, 0] * g[:, 0] * g[:, 1],
                            -2 * b[:, 0] * g[:, 0] * g[:, 2], -2 * b[:, 0] * g[:, 1] * g[:, 2]])


def _loo(values: np.ndarray, hat: np.ndarray) -> np.ndarray:
    """Leave-one-out predictions (V, N) of a linear smoother ``values @ hat.T``."""
    leverage = np.clip(np.diag(hat), 0.0, MAX_LEVERAGE)
    fitted = values @ hat.T
    return (fitted - leverage * values) / (1.0 - leverage)


def loo_prediction(data: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray,
                   mask: np.ndarray) -> np.ndarray:
    """Leave-one-out prediction of every diffusion-weighted volume inside ``mask``.

    Per shell (b rounded to 100 s/mm2), a log-linear tensor fitted by least squares to
    the b=0 volumes and that shell's volumes: each shell gets its own apparent tensor,
    so the prediction holds at any b (one tensor across shells does not). The
    leave-one-out prediction comes in closed form from the fit's hat matrix (one fit per
    shell). b=0 volumes are predicted by the mean of the other b=0 volumes (themselves
    when alone). A spherical-harmonic predictor (order 4, Laplace-Beltrami smoothing)
    was tried on a real b=2500 x 20 series: leave-one-out error 12.1 % against 13.2 % for
    the tensor, but the corrected FA agreed less with MRtrix3 (r 0.81 against 0.82).

    Parameters
    ----------
    data : ndarray (X, Y, Z, N)
    bvals, bvecs : ndarray (N,), (N, 3)
        Gradients in the voxel frame of ``data``.
    mask : ndarray of bool (X, Y, Z)

    Returns
    -------
    ndarray (X, Y, Z, N), float32
    """
    bvals = np.asarray(bvals, float)
    values = np.asarray(data[mask], dtype=np.float64)
    out_values = np.empty_like(values)
    shells = np.where(bvals <= 50.0, 0.0, np.round(bvals / 100.0) * 100.0)
    b0 = np.flatnonzero(shells == 0)
    if len(b0) > 1:
        out_values[:, b0] = (values[:, b0].sum(1, keepdims=True) - values[:, b0]) / (len(b0) - 1)
    else:
        out_values[:, b0] = values[:, b0]
    scale = np.maximum(values[:, b0].mean(axis=1, keepdims=True), 1e-6)
    logs = np.log(np.maximum(values / scale, LOG_FLOOR))
    for shell in np.unique(shells[shells > 0]):
        index = np.r_[b0, np.flatnonzero(shells == shell)]
        design = tensor_design(bvals[index], bvecs[index])
        loo = np.exp(_loo(logs[:, index], design @ np.linalg.pinv(design))) * scale
        out_values[:, index[len(b0):]] = loo[:, len(b0):]
    out = np.zeros(data.shape, dtype=np.float32)
    out[mask] = np.maximum(out_values, 0.0).astype(np.float32)
    return out


def _frame(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit axis directions D (columns, world) and voxel sizes of a grid."""
    linear = np.asarray(affine, float)[:3, :3]
    zooms = np.linalg.norm(linear, axis=0)
    return linear / zooms, zooms


def eddy_model(matrix: np.ndarray, affine: np.ndarray, pe_axis: int,
               centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project a world affine (reference point -> volume point) onto rigid motion followed
    by a displacement along the phase-encoding axis linear in position.

    In the grid's own axes (unit directions ``D``), the model's linear part is
    ``(I + u c^T) R``: every row but the phase-encoding one is a row of the rotation
    ``R``. ``R`` is rebuilt from those two rows (orthonormalised, completed to a proper
    rotation), ``c`` from the phase-encoding row, and the translation is chosen so the
    projected map agrees with the fitted one at ``centre`` (world mm).

    Returns
    -------
    matrix : ndarray (4, 4)
        The projected world affine.
    rotation : ndarray (3, 3)
        Its rigid rotation (world frame), for the b-vector.
    eddy : ndarray (3,)
        ``c``: displacement along the phase-encoding axis per mm along each grid axis
        (``c[pe_axis]`` is the scale along it).
    """
    direction, _ = _frame(affine)
    linear = direction.T @ np.asarray(matrix, float)[:3, :3] @ direction
    others = [k for k in range(3) if k != pe_axis]
    a = linear[others[0]] / np.linalg.norm(linear[others[0]])
    b = linear[others[1]] - (linear[others[1]] @ a) * a
    b /= np.linalg.norm(b)
    rotation = np.zeros((3, 3))
    rotation[others[0]], rotation[others[1]] = a, b
    rotation[pe_axis] = np.cross(a, b)
    if np.linalg.det(rotation) < 0:
        rotation[pe_axis] *= -1.0
    eddy = (linear[pe_axis] - rotation[pe_axis]) @ rotation.T
    model = rotation.copy()
    model[pe_axis] += eddy @ rotation
    out = np.eye(4)
    out[:3, :3] = direction @ model @ direction.T
    centre = np.asarray(centre, float)
    out[:3, 3] = (np.asarray(matrix, float) @ np.r_[centre, 1.0])[:3] - out[:3, :3] @ centre
    return out, direction @ rotation @ direction.T, eddy


def _mean_displacement(matrix: np.ndarray, points: np.ndarray) -> float:
    """Mean distance (mm) a world map moves ``points`` (P, 3)."""
    moved = points @ matrix[:3, :3].T + matrix[:3, 3]
    return float(np.linalg.norm(moved - points, axis=1).mean())


def _residual(volume: np.ndarray, target: np.ndarray, where: np.ndarray) -> float:
    """Mean squared difference of two volumes inside ``where``."""
    return float(np.mean((volume[where] - target[where]) ** 2))


def resample(volume: np.ndarray, matrix: np.ndarray, affine: np.ndarray, *,
             order: int = 3) -> np.ndarray:
    """``volume`` at the reference grid points mapped by the world ``matrix`` (spline)."""
    inverse = np.linalg.inv(affine)
    voxel = inverse @ matrix @ affine
    out = ndimage.affine_transform(np.asarray(volume, np.float32), voxel[:3, :3],
                                   offset=voxel[:3, 3], order=order, mode="constant", cval=0.0)
    return np.maximum(out, 0.0)


@dataclass
class Correction:
    """Output of :func:`correct`.

    Attributes
    ----------
    data : ndarray (X, Y, Z, N), float32
        Every volume resampled once from the input with its whole map.
    bvecs : ndarray (N, 3)
        Gradients rotated by each volume's rigid rotation (voxel frame).
    matrices : ndarray (N, 4, 4)
        World maps, reference point -> volume point (motion and eddy currents).
    rotations : ndarray (N, 3, 3)
        Their rigid parts (world frame).
    eddy : ndarray (N, 3)
        Eddy-current coefficients (see :func:`eddy_model`).
    prediction : ndarray (X, Y, Z, N), float32
        The leave-one-out prediction of the corrected series.
    rejected : int
        Volumes whose registration to the prediction diverged (round-0 pose kept).
    seconds : float
    """

    data: np.ndarray
    bvecs: np.ndarray
    matrices: np.ndarray
    rotations: np.ndarray
    eddy: np.ndarray
    prediction: np.ndarray
    rejected: int
    seconds: float


def correct(data: np.ndarray, affine: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray, *,
            mask: np.ndarray, pe_axis: int, eddy: bool = True, rounds: int = 2,
            iterations=(60, 30), shrink=(4, 2), sigmas=(1.0, 0.0)) -> Correction:
    """Register every volume to its leave-one-out prediction (see the module notes).

    Parameters
    ----------
    data : ndarray (X, Y, Z, N)
    affine : ndarray (4, 4)
    bvals, bvecs : ndarray (N,), (N, 3)
        Voxel-frame gradients.
    mask : ndarray of bool (X, Y, Z)
        Brain mask (its dilation weighs the registration metric).
    pe_axis : int
        Phase-encoding voxel axis (canonical grid).
    eddy : bool
        Model eddy currents (else rigid motion only).
    rounds : int
        Prediction -> registration rounds.
    iterations, shrink, sigmas
        ANTs schedule per level.
    """
    import ants

    from pipeline.antsio import read_ants_affine, to_ants

    start = time.perf_counter()
    data = np.asarray(data, np.float32)
    bvals = np.asarray(bvals, float)
    n = data.shape[3]
    is_b0 = bvals <= 50.0
    region = ndimage.binary_dilation(mask, iterations=2)
    metric_mask = to_ants(nib.Nifti1Image(region.astype(np.float32), affine))
    centre = nib.affines.apply_affine(affine, np.argwhere(mask).mean(axis=0))
    matrices = np.tile(np.eye(4), (n, 1, 1))
    rotations = np.tile(np.eye(3), (n, 1, 1))
    coefficients = np.zeros((n, 3))

    def register(fixed: np.ndarray, moving: np.ndarray, affine_kind: bool,
                 schedule=(iterations, shrink, sigmas), bins: int = 32,
                 metric: str = "mattes") -> np.ndarray:
        its, shrinks, smooth = schedule
        reg = ants.registration(
            fixed=to_ants(nib.Nifti1Image(fixed, affine)),
            moving=to_ants(nib.Nifti1Image(moving, affine)),
            type_of_transform="Affine" if affine_kind else "Rigid",
            initial_transform="Identity", aff_metric=metric, aff_sampling=bins,
            aff_iterations=tuple(its), aff_shrink_factors=tuple(shrinks),
            aff_smoothing_sigmas=tuple(smooth), mask=metric_mask, verbose=False)
        return read_ants_affine(reg["fwdtransforms"][0])

    # b=0 volumes: rigid to the first (same contrast)
    b0_index = np.flatnonzero(is_b0)
    for i in b0_index[1:]:
        matrix = register(data[..., b0_index[0]], data[..., i], False)
        matrices[i], rotations[i], _ = eddy_model(matrix, affine, pe_axis, centre)
        coefficients[i] = 0.0
    # round 0: each volume rigidly to its shell's mean (a sharp target of its contrast,
    # with no angular detail): the gross head motion, so that the first prediction is
    # made from an aligned series
    shells = np.where(is_b0, 0.0, np.round(bvals / 100.0) * 100.0)
    for shell in np.unique(shells[~is_b0]):
        index = np.flatnonzero(shells == shell)
        mean = data[..., index].mean(axis=-1)
        for i in index:
            matrix = register(mean, data[..., i], False)
            matrices[i], rotations[i], _ = eddy_model(matrix, affine, pe_axis, centre)
    current = np.stack([resample(data[..., i], matrices[i], affine) for i in range(n)], axis=-1)
    start_pose = matrices.copy()
    brain_points = nib.affines.apply_affine(affine, np.argwhere(mask))
    voxel_mm = float(np.cbrt(abs(np.linalg.det(affine[:3, :3]))))
    rejected: set[int] = set()
    prediction = None
    for round_ in range(rounds):
        rotated = rotate_bvecs(bvecs, rotations, affine)
        prediction = loo_prediction(current, bvals, rotated, region)
        kept = 0
        for i in np.flatnonzero(~is_b0):
            matrix = register(prediction[..., i], data[..., i], eddy, metric="mattes")
            projected, rotation, coefficient = eddy_model(matrix, affine, pe_axis, centre)
            # a map that moves the brain by more than MAX_JUMP_VOXELS from the volume's
            # round-0 pose has diverged (seen once on a phantom volume, 2.8 mm): the
            # round-0 pose is kept and the volume counted
            jump = _mean_displacement(np.linalg.inv(start_pose[i]) @ projected, brain_points)
            if jump > MAX_JUMP_VOXELS * voxel_mm:
                logger.warning("DWI volume %d: registration to its prediction moved the brain "
                               "%.1f mm from its first pose; kept the first pose", i, jump)
                rejected.add(int(i))
                continue
            if not eddy:
                coefficient = np.zeros(3)
            # the method minimises the distance to the prediction: a map that moves the
            # volume further from it than its current pose is not taken (on a motionless
            # 4 mm phantom, Mattes on near-identical images wandered by up to 3 mm)
            candidate = resample(data[..., i], projected, affine) * (1.0 + coefficient[pe_axis])
            if (_residual(candidate, prediction[..., i], region)
                    >= _residual(current[..., i], prediction[..., i], region)):
                kept += 1
                continue
            rejected.discard(int(i))
            matrices[i], rotations[i], coefficients[i] = projected, rotation, coefficient
        current = np.stack([resample(data[..., i], matrices[i], affine)
                            * (1.0 + coefficients[i, pe_axis]) for i in range(n)], axis=-1)
        logger.info("motion/eddy round %d of %d: max translation %.2f mm, max eddy scale "
                    "%.4f; %d volume(s) kept their pose (no closer to the prediction)",
                    round_ + 1, rounds, np.abs(matrices[:, :3, 3]).max(),
                    np.abs(coefficients[:, pe_axis]).max(), kept)
    # anchor: the rounds align each shell to itself (its mean pose); one rigid map of
    # the b=0 frame onto each shell's mean corrected volume puts every volume in the
    # frame of the first b=0 (the reference of the b-vectors and of the other streams)
    b0_mean = current[..., is_b0].mean(axis=-1)
    for shell in np.unique(shells[~is_b0]):
        index = np.flatnonzero(shells == shell)
        shell_mean = current[..., index].mean(axis=-1)
        # across contrast, so at full resolution without smoothing and with 64 histogram
        # bins: on a motionless phantom the coarse-to-fine schedule of the volumes found
        # 0.35 mm (4 mm voxels) where this finds 0.12 mm (0.04 mm at 2 mm voxels); a
        # metric restricted to tissue (no CSF, whose contrast reverses) did worse on the
        # phantom (0.9 mm) and diverged on a real b=2500 series (18 mm)
        to_shell = register(b0_mean, shell_mean, False, schedule=ANCHOR_SCHEDULE, bins=64)
        logger.info("shell b=%g anchored to b=0: %.2f mm", shell,
                    float(np.linalg.norm(to_shell[:3, 3] + to_shell[:3, :3] @ centre - centre)))
        for i in index:
            matrices[i], rotations[i], coefficients[i] = eddy_model(
                matrices[i] @ to_shell, affine, pe_axis, centre)
            if not eddy:
                coefficients[i] = 0.0
    current = np.stack([resample(data[..., i], matrices[i], affine)
                        * (1.0 + coefficients[i, pe_axis]) for i in range(n)], axis=-1)
    rotated = rotate_bvecs(bvecs, rotations, affine)
    rotated[is_b0] = 0.0
    prediction = loo_prediction(current, bvals, rotated, region)
    return Correction(current.astype(np.float32), rotated, matrices, rotations, coefficients,
                      prediction, len(rejected), time.perf_counter() - start)
