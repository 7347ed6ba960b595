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
(Cook & Weisberg 1982). Volumes of one contrast are registered by least squares
(Levenberg-Marquardt on the rigid + eddy-current model, ``pipeline.dwi.register``):
deterministic, bit for bit. The map is a rigid head motion followed by a displacement
along the phase-encoding axis that is linear in position (shear and scale along that
axis plus an offset; Jezzard et al. 1998), about the brain's centre; the rigid part
alone rotates the b-vector (Leemans & Jones 2009), and the Jacobian of the
eddy-current part modulates the intensity, as eddy does. The eddy-current terms are
modelled as linear in the gradient (FSL eddy's second-level model,
``pipeline.dwi.prediction.second_level``); the rigid parameters have the prediction's
leak undone on the patterns a leave-one-out registration can see
(``pipeline.dwi.prediction.undo_rigid_leak``): the N - 6 patterns of one shell that its
tensor cannot represent.

``rounds`` rounds, each predicting from the series the previous one corrected and
registering the input volumes afresh, start from no motion, as eddy does. A first
alignment of every volume to its shell's mean (once used here to start from) is
biased on real anatomy: on the real b=2500 series with no distortion planted it
invented 1.1 mm of displacement per volume, because a volume's anisotropic contrast is
not its shell mean's, and that bias lies on the patterns the rounds cannot see.
Volumes are resampled once, with their whole map, by cubic spline; outside the field
of view the edge slice continues (``mode="nearest"``), as a zero there turned the
first and last slices' FA into noise.

Last, the shells are put in the frame of the first b=0: each shell's mean corrected
volume is registered rigidly (Mattes MI, across contrast) to the level below it (b=0,
or the next lower shell) when the two b-values differ by at most ``anchor_max_step``,
and that map is composed with every volume's (FSL eddy's post-hoc alignment of shells,
"PEAS"). A larger step is not anchored, with a warning: between b=0 and b=2500 the
anchor was off by 0.4-0.9 mm on real anatomy with no offset planted (exact at
b=1000-2000), more than it corrects.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.dwi.gradients import rotate_bvecs
from pipeline.dwi.prediction import grid_eddy, grid_rotation, loo_prediction, second_level, undo_rigid_leak
from pipeline.dwi.register import VolumeTransform, grid_to_world, register_volume
from pipeline.validate import shell_of

logger = logging.getLogger(__name__)

MAX_JUMP_VOXELS = 3.0  # a round moving the brain more than this from its last pose diverged
ANCHOR_SCHEDULE = ((200,), (1,), (0.0,))  # iterations, shrink, smoothing of the shell anchor


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
    rotation = grid_rotation(linear, pe_axis)
    eddy = grid_eddy(linear, pe_axis)
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


def resample(volume: np.ndarray, matrix: np.ndarray, affine: np.ndarray, *,
             order: int = 3, field_vox: np.ndarray | None = None,
             pe_axis: int = 1) -> np.ndarray:
    """``volume`` at the reference grid points mapped by the world ``matrix`` (spline).

    With ``field_vox`` (susceptibility displacement, voxels along ``pe_axis``, of the
    series at each undistorted grid point, :mod:`pipeline.dwi.sdc`) each point is first
    displaced by the field (undistorted -> distorted reference), then mapped.
    """
    voxel = np.linalg.inv(affine) @ matrix @ affine
    if field_vox is None:
        out = ndimage.affine_transform(np.asarray(volume, np.float32), voxel[:3, :3],
                                       offset=voxel[:3, 3], order=order, mode="nearest")
        return np.maximum(out, 0.0)
    grid = np.indices(volume.shape, dtype=np.float64)
    grid[pe_axis] += field_vox
    points = np.tensordot(voxel[:3, :3], grid, axes=(1, 0)) + voxel[:3, 3, None, None, None]
    out = ndimage.map_coordinates(np.asarray(volume, np.float32), points, order=order,
                                  mode="nearest")
    return np.maximum(out, 0.0)


def parallel_map(function, items, threads: int) -> list:
    """``[function(i) for i in items]`` on ``threads`` worker threads, in order.

    The per-volume work (scipy.ndimage interpolation and filters, NumPy algebra) releases
    the GIL, and each volume's result depends only on its own inputs, so the result is
    the same as the serial loop's, bit for bit."""
    if threads <= 1:
        return [function(i) for i in items]
    with ThreadPoolExecutor(int(threads)) as pool:
        return list(pool.map(function, items))


def resample_series(data, matrices, coefficients, affine, pe_axis,
                    field_vox=None, threads: int = 1) -> np.ndarray:
    """Every volume resampled once with its whole map, Jacobian-modulated (eddy-current
    scale and, with a susceptibility field, its slope along phase encoding)."""
    jacobian = 1.0
    if field_vox is not None:
        jacobian = 1.0 + np.gradient(field_vox, axis=pe_axis).astype(np.float32)

    def one(i):
        return (resample(data[..., i], matrices[i], affine, field_vox=field_vox, pe_axis=pe_axis)
                * (1.0 + coefficients[i, pe_axis]) * jacobian)

    return np.stack(parallel_map(one, range(data.shape[3]), threads), axis=-1)


def _rigid_mattes_dense(fixed, moving, mask) -> np.ndarray:
    """Rigid ANTs registration (Mattes, 64 bins, full resolution) on *every* voxel of
    ``mask``: world map fixed -> moving.

    ``ants.registration`` always samples the metric on a jittered regular grid, whose
    jitter made two runs differ by 5e-4 mm; ``antsRegistration`` itself takes the
    sampling strategy ``None`` (dense), which repeats to the order in which ITK's
    threads add up the metric (1e-9 mm). The command line is ANTs' own, run through
    ANTsPy's entry point for raw arguments.
    """
    import os
    import tempfile

    import ants
    from ants.internal import get_pointer_string

    from pipeline.antsio import read_ants_affine

    its, shrinks, smooth = ANCHOR_SCHEDULE
    fixed, moving = fixed.clone("float"), moving.clone("float")
    binary = mask != 0  # every image handed over by pointer stays referenced until the end
    f, m = get_pointer_string(fixed), get_pointer_string(moving)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "anchor")
        warped, inverse = fixed.clone(), moving.clone()
        ants.registration([
            "--dimensionality", "3", "--float", "1",
            "--metric", f"Mattes[{f},{m},1,64,None]", "--transform", "Rigid[0.25]",
            "--convergence", f"[{'x'.join(map(str, its))},1e-6,10]",
            "--smoothing-sigmas", "x".join(f"{s:g}" for s in smooth) + "vox",
            "--shrink-factors", "x".join(map(str, shrinks)),
            "--masks", f"[{get_pointer_string(binary)},NA]",
            "--output", f"[{prefix},{get_pointer_string(warped)},{get_pointer_string(inverse)}]",
        ], None)
        return read_ants_affine(prefix + "0GenericAffine.mat")


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
        Volumes whose registration to the prediction diverged (last pose kept).
    anchored : dict
        Shell b-value -> whether it was anchored to the level below.
    seconds : float
    """

    data: np.ndarray
    bvecs: np.ndarray
    matrices: np.ndarray
    rotations: np.ndarray
    eddy: np.ndarray
    prediction: np.ndarray
    rejected: int
    anchored: dict
    seconds: float


def correct(data: np.ndarray, affine: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray, *,
            mask: np.ndarray, pe_axis: int, eddy: bool = True, rounds: int = 2,
            iterations=(20, 20), shrink=(2, 1), sigmas=(1.0, 0.0),
            anchor_max_step: float = 2000.0, field_mm: np.ndarray | None = None,
            threads: int = 1) -> Correction:
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
        Least-squares schedule per level (iterations, cost-voxel strides, smoothing).
    anchor_max_step : float
        Largest b-value step (s/mm2) across which a shell is anchored to the level below.
    field_mm : ndarray (X, Y, Z), optional
        Susceptibility displacement of the series (mm along the phase-encoding axis) at
        each undistorted point, from :func:`pipeline.dwi.sdc.estimate_field`. The volumes
        are registered to each other as acquired (they share the distortion) and the
        field is applied in the one final resampling, so the output is undistorted.
    threads : int
        Volumes registered and resampled at once (same result as one at a time).
    """

    from pipeline.antsio import to_ants

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

    to_world = grid_to_world(affine, data.shape)
    from_world = np.linalg.inv(to_world)
    zooms = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
    weight = region.astype(np.float32)

    def register(fixed: np.ndarray, moving: np.ndarray, affine_kind: bool,
                 start: np.ndarray | None = None, start_eddy=None) -> np.ndarray:
        """Same contrast: least squares (deterministic), world map fixed -> moving."""
        init = None
        if start is not None:
            grid = from_world @ start @ to_world
            init = VolumeTransform(grid[:3, :3].copy(), grid[:3, 3].copy(),
                                   np.zeros(3) if start_eddy is None else start_eddy.copy())
        found = register_volume(moving, fixed, weight, zooms=zooms, pe_axis=pe_axis, init=init,
                                eddy=affine_kind, sigmas=sigmas, strides=shrink,
                                max_iterations=iterations)
        return to_world @ found.matrix(pe_axis) @ from_world

    def register_across(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """Across contrast (b=0 against a shell): ANTs rigid, Mattes mutual information."""
        return _rigid_mattes_dense(to_ants(nib.Nifti1Image(fixed, affine)),
                                   to_ants(nib.Nifti1Image(moving, affine)), metric_mask)

    # b=0 volumes: rigid to the first (same contrast)
    b0_index = np.flatnonzero(is_b0)
    for i in b0_index[1:]:
        matrix = register(data[..., b0_index[0]], data[..., i], False)
        matrices[i], rotations[i], _ = eddy_model(matrix, affine, pe_axis, centre)
        coefficients[i] = 0.0
    shells = shell_of(bvals)
    current = resample_series(data, matrices, coefficients, affine, pe_axis, threads=threads)
    voxel_mm = float(np.cbrt(abs(np.linalg.det(affine[:3, :3]))))
    brain_points = nib.affines.apply_affine(affine, np.argwhere(mask))
    rejected: set[int] = set()
    prediction = None
    dw_index = np.flatnonzero(~is_b0)
    for round_ in range(rounds):
        rotated = rotate_bvecs(bvecs, rotations, affine, bvals)
        prediction = loo_prediction(current, bvals, rotated, region)
        grids = {}
        found = parallel_map(lambda i, target=prediction: register(
            target[..., i], data[..., i], eddy, matrices[i], coefficients[i]), dw_index, threads)
        for i, matrix in zip(dw_index, found, strict=True):
            # a round that moves the brain by more than MAX_JUMP_VOXELS from the volume's
            # last pose has diverged (signal dropout): that pose is kept and counted
            jump = _mean_displacement(np.linalg.inv(matrices[i]) @ matrix, brain_points)
            if jump > MAX_JUMP_VOXELS * voxel_mm:
                logger.warning("DWI volume %d: registration to its prediction moved the brain "
                               "%.1f mm from its last pose; kept that pose", i, jump)
                rejected.add(int(i))
                matrix = matrices[i]
            else:
                rejected.discard(int(i))
            grids[i] = from_world @ matrix @ to_world
        for shell in np.unique(shells[~is_b0]):
            index = np.flatnonzero(shells == shell)
            previous = {i: from_world @ matrices[i] @ to_world for i in index}
            grids.update(undo_rigid_leak({i: grids[i] for i in index}, previous, bvals,
                                         rotated, pe_axis))
            if eddy:
                grids.update(second_level({i: grids[i] for i in index}, previous, bvals,
                                           bvecs, rotated, pe_axis))
        for i in dw_index:
            matrices[i], rotations[i], coefficients[i] = eddy_model(
                to_world @ grids[i] @ from_world, affine, pe_axis, centre)
            if not eddy:
                coefficients[i] = 0.0
        current = resample_series(data, matrices, coefficients, affine, pe_axis, threads=threads)
        logger.info("motion/eddy round %d of %d: max translation %.2f mm, max eddy scale "
                    "%.4f", round_ + 1, rounds, np.abs(matrices[:, :3, 3]).max(),
                    np.abs(coefficients[:, pe_axis]).max())
    # anchor: the rounds align each shell to itself (its mean pose); a rigid map of each
    # shell's mean onto the level below (b=0, or the next lower shell) puts every volume
    # in the frame of the first b=0 (the reference of the b-vectors and other streams)
    level_b, level_mean, level_map = 0.0, current[..., is_b0].mean(axis=-1), np.eye(4)
    anchored = {}
    for shell in np.unique(shells[~is_b0]):
        index = np.flatnonzero(shells == shell)
        shell_mean = current[..., index].mean(axis=-1)
        if shell - level_b > anchor_max_step:
            logger.warning("shell b=%g not anchored to b=%g (step above %g s/mm2): its volumes "
                           "keep their mean pose", shell, level_b, anchor_max_step)
            anchored[float(shell)] = False
            continue
        # across contrast, so at full resolution without smoothing, 64 histogram bins
        to_shell = register_across(level_mean, shell_mean) @ level_map
        logger.info("shell b=%g anchored to b=%g: %.2f mm", shell, level_b,
                    float(np.linalg.norm(to_shell[:3, 3] + to_shell[:3, :3] @ centre - centre)))
        for i in index:
            matrices[i], rotations[i], coefficients[i] = eddy_model(
                matrices[i] @ to_shell, affine, pe_axis, centre)
            if not eddy:
                coefficients[i] = 0.0
        anchored[float(shell)] = True
        level_b, level_mean, level_map = shell, shell_mean, to_shell
    field_vox = None if field_mm is None else np.asarray(field_mm, float) / zooms[pe_axis]
    current = resample_series(data, matrices, coefficients, affine, pe_axis, field_vox, threads)
    rotated = rotate_bvecs(bvecs, rotations, affine, bvals)
    rotated[is_b0] = 0.0
    prediction = loo_prediction(current, bvals, rotated, region)
    return Correction(current.astype(np.float32), rotated, matrices, rotations, coefficients,
                      prediction, len(rejected), anchored, time.perf_counter() - start)
