"""Laplace-equation cortical thickness (Jones et al. 2000; Yezzi & Prince 2003).

The cortex is the region between two surfaces: the grey/white boundary and the
pial (grey/CSF) boundary. A harmonic potential ``u`` (0 on white matter, 1
outside the brain tissue, Laplace's equation in grey matter) gives field lines
that run from one surface to the other without crossing (Jones, Buchbinder &
Aharon, Hum Brain Mapp 2000;11:12-32). The thickness at a grey-matter point is
the length of its field line, obtained without tracing as the sum of two
distances that satisfy first-order PDEs along the unit tangent ``T = grad u /
|grad u|`` (Yezzi & Prince, IEEE TMI 2003;22:1332-1339):

    grad L0 . T = 1,  L0 = 0 on the white surface,
   -grad L1 . T = 1,  L1 = 0 on the pial surface,      thickness = L0 + L1,

solved with the upwind scheme of Yezzi & Prince. Boundaries lie half a voxel
from the centre of the last white / first CSF voxel, so the thickness of a
slab of ``n`` grey voxels is ``n`` voxels.

Partial volume: each T1w voxel is subdivided (grid of at most ``grid_mm``)
and as many of its sub-voxels as its tissue fraction says are filled, those
facing the tissue first (:func:`partial_volume_mask`), so the surfaces sit
between voxel centres where the fractions say (as voxel-based methods with
partial-volume maps do, Acosta et al., Med Image Anal 2009;13:730-743), and a
sub-voxel change of the grey matter (cortical thinning) changes the measured
thickness.

Touching sulcal banks are separated on their medial surface
(:func:`sulcal_skeleton`), and the path lengths are relaxed in order of the
potential (see :func:`_path_length`).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import linalg as splinalg

from pipeline.progress import step

log = logging.getLogger(__name__)

_AXES = 3

#: Default jump (mm) of the nearest white-matter point that marks the medial
#: surface of a sulcus whose banks touch (:func:`sulcal_skeleton`); the
#: phantom's planted thinning uses the same (pipeline.simulate.anatomy).
SULCAL_JUMP_MM = 3.0


def subdivision(zooms: np.ndarray, grid_mm: float) -> np.ndarray:
    """Integer subdivision per axis so the fine voxel is at most ``grid_mm``."""
    return np.maximum(1, np.ceil(zooms / grid_mm - 1e-6)).astype(int)


def upsample(arr: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of ``arr`` onto a grid that subdivides each voxel
    into ``factors`` sub-voxels (centres of the sub-voxels, edge values held)."""
    coords = [(np.arange(n * f) - (f - 1) / 2.0) / f for n, f in zip(arr.shape, factors, strict=True)]
    grid = np.meshgrid(*coords, indexing="ij", sparse=True)
    full = [np.broadcast_to(g, tuple(n * f for n, f in zip(arr.shape, factors, strict=True)))
            for g in grid]
    return ndimage.map_coordinates(arr.astype(np.float32), full, order=1, mode="nearest")


def partial_volume_mask(fraction: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Binary mask on the subdivided grid that keeps each voxel's volume fraction.

    Each voxel of ``fraction`` (values in [0, 1]) is split into ``prod(factors)``
    sub-voxels, of which ``round(fraction * prod(factors))`` are set: those with
    the largest trilinearly interpolated fraction, i.e. the ones facing the
    tissue. At a planar boundary this puts the boundary where the partial
    volume says (a voxel 35 % GM next to pure GM has its boundary 35 % of the
    way in), which a threshold of the interpolated fraction does not.
    """
    fraction = np.clip(np.asarray(fraction, np.float32), 0, 1)
    n_sub = int(np.prod(factors))
    if n_sub == 1:
        return fraction >= 0.5
    fine = upsample(fraction, factors)
    nx, ny, nz = fraction.shape
    fx, fy, fz = (int(f) for f in factors)
    blocks = fine.reshape(nx, fx, ny, fy, nz, fz).transpose(0, 2, 4, 1, 3, 5).reshape(
        nx, ny, nz, n_sub)
    del fine
    # rank of each sub-voxel within its voxel (0 = largest interpolated fraction)
    order = np.argsort(-blocks, axis=-1, kind="stable")
    rank = np.empty_like(order, dtype=np.int16)
    np.put_along_axis(rank, order, np.arange(n_sub, dtype=np.int16)[None, None, None, :], axis=-1)
    del order, blocks
    keep = rank < np.rint(fraction * n_sub).astype(np.int16)[..., None]
    return keep.reshape(nx, ny, nz, fx, fy, fz).transpose(0, 3, 1, 4, 2, 5).reshape(
        nx * fx, ny * fy, nz * fz)


def block_mean(values: np.ndarray, weight: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over the ``weight`` sub-voxels of each coarse voxel
    (0 where no sub-voxel has weight)."""
    shape = tuple(n // f for n, f in zip(values.shape, factors, strict=True))
    split = [x for n, f in zip(shape, factors, strict=True) for x in (n, f)]
    num = (values * weight).reshape(split).sum(axis=(1, 3, 5))
    den = weight.reshape(split).sum(axis=(1, 3, 5))
    return np.where(den > 0, num / np.maximum(den, 1), 0.0).astype(np.float32)


def _neighbours(shape):
    """Flat-index strides of the six axis neighbours."""
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    return strides


def _solve_potential(gm: np.ndarray, outside: np.ndarray, spacing: np.ndarray,
                     tol: float) -> np.ndarray:
    """Harmonic ``u`` in ``gm`` with u = 1 on ``outside`` and 0 on every other
    voxel (white matter); 3D masks padded so GM never touches the array edge.
    Conjugate gradients on the 7-point Laplacian."""
    shape = gm.shape
    strides = _neighbours(shape)
    idx = np.flatnonzero(gm)
    n = idx.size
    pos = np.full(gm.size, -1, np.int64)
    pos[idx] = np.arange(n)
    out_flat = outside.ravel()
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    rhs = np.zeros(n)
    for axis in range(_AXES):
        w = 1.0 / spacing[axis] ** 2
        for sign in (-1, 1):
            nb = idx + sign * strides[axis]
            diag += w
            inside = pos[nb] >= 0
            rows.append(np.flatnonzero(inside))
            cols.append(pos[nb[inside]])
            vals.append(np.full(inside.sum(), -w))
            rhs += w * out_flat[nb] * ~inside
    a = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n, n))
    a = a + sparse.diags(diag)
    precond = sparse.diags(1.0 / diag)
    x0 = np.full(n, 0.5)
    sol, info = splinalg.cg(a, rhs, x0=x0, M=precond, rtol=tol, maxiter=2000)
    if info != 0:  # the approximate potential still orders the field lines
        log.warning("Laplace potential: conjugate gradients stopped before rtol %g "
                    "(info %d, %d unknowns)", tol, info, n)
    u = outside.astype(np.float64)
    u.ravel()[idx] = sol
    return u


def _path_length(gm_idx: np.ndarray, tangent: np.ndarray, u: np.ndarray,
                 boundary: np.ndarray, spacing: np.ndarray, direction: int,
                 n_chunks: int = 400, max_sweeps: int = 200, tol: float = 1e-5) -> np.ndarray:
    """Upwind solution of ``direction * grad L . T = 1`` on the GM voxels
    ``gm_idx`` (flat indices into the potential ``u``), L = 0 on the surface
    half a voxel into the ``boundary`` voxels (flat mask).

    A voxel's upwind neighbour along each axis (against the sign of ``T``)
    contributes only if it lies strictly lower on the potential (higher, for
    L1) -- or is a boundary voxel: the dependencies then follow the potential
    and never form a cycle, so relaxing the voxels in chunks of increasing
    (decreasing) potential, each from the final values of the earlier chunks,
    converges in a few sweeps per chunk. Voxels with no contributing
    neighbour get NaN.
    """
    strides = _neighbours(u.shape)
    flat_u = u.ravel()
    n = gm_idx.size
    pos = np.full(flat_u.size, -1, np.int64)
    pos[gm_idx] = np.arange(n)
    own = flat_u[gm_idx]
    weights, sources, on_edge = [], [], []
    for axis in range(_AXES):
        t = tangent[axis]
        step = -direction * np.sign(t).astype(np.int64) * strides[axis]
        nb = gm_idx + step
        in_gm = (pos[nb] >= 0) & (step != 0) & (direction * (own - flat_u[nb]) > 0)
        at_edge = boundary[nb] & (pos[nb] < 0) & (step != 0)
        weights.append(np.abs(t) / spacing[axis] * (in_gm | at_edge))
        sources.append(np.where(in_gm, pos[nb], 0))
        on_edge.append(at_edge)
    wsum = np.sum(weights, axis=0)
    # defined where the contributing neighbours carry at least half the tangent
    total = np.sum([np.abs(tangent[a]) / spacing[a] for a in range(_AXES)], axis=0)
    defined = (wsum > 1e-6) & (wsum >= 0.5 * total)
    wsum = np.where(defined, wsum, 1.0)
    # boundary value: the staircase surface through the boundary voxels' facing
    # half-voxel points is a plane at 1 / (2 sum_d |T_d| / h_d) from the voxel
    # (h/2 for an axis-aligned field line, h / (2 sqrt 3) for a diagonal one)
    edge = -0.5 / wsum
    order = np.argsort(direction * own, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    fixed = 1.0 + sum(np.where(b, a * edge, 0.0) for a, b in zip(weights, on_edge, strict=True))
    terms = [(np.where(b, 0.0, a)[order], rank[s][order])
             for a, s, b in zip(weights, sources, on_edge, strict=True)]
    fixed, wsum, defined = fixed[order], wsum[order], defined[order]
    length = np.zeros(n)
    bounds = np.linspace(0, n, min(n_chunks, max(n, 1)) + 1).astype(int)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        for _ in range(max_sweeps):
            acc = fixed[lo:hi].copy()
            for a, s in terms:
                acc += a[lo:hi] * length[s[lo:hi]]
            new = np.where(defined[lo:hi], acc / wsum[lo:hi], 0.0)
            change = float(np.max(np.abs(new - length[lo:hi])))
            length[lo:hi] = new
            if change < tol:
                break
    out = np.empty(n)
    out[order] = np.where(defined, length, np.nan)
    return out


def sulcal_skeleton(gm: np.ndarray, wm: np.ndarray, spacing, *, jump_mm: float,
                    min_depth_mm: float = 1.0) -> np.ndarray:
    """Grey-matter voxels on the medial surface between two banks of a sulcus.

    Where the CSF of a sulcus is thinner than a voxel the two banks' grey
    matter touch and the pial surface is invisible; measured from white matter
    outwards, the cortex of both banks would then reach the top of the sulcus.
    As projection-based thickness (Dahnke, Yotter & Gaser, NeuroImage
    2013;65:336-348) the hidden surface is put on the medial axis of the grey
    matter between the banks: voxels whose nearest white-matter point jumps by
    more than ``jump_mm`` to a neighbour's (the two banks) and lie at least
    ``min_depth_mm`` from white matter.
    """
    spacing = np.asarray(spacing, float)
    depth, nearest = ndimage.distance_transform_edt(~wm, sampling=spacing, return_indices=True)
    skeleton = np.zeros(gm.shape, bool)
    for axis in range(_AXES):
        a = [slice(None)] * _AXES
        b = [slice(None)] * _AXES
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        jump = np.sqrt(sum(((nearest[k][a] - nearest[k][b]) * spacing[k]) ** 2
                           for k in range(_AXES)))
        both = gm[a] & gm[b] & (jump > jump_mm)
        # the deeper voxel of the pair (ties: the first) joins the skeleton
        first = both & (depth[a] >= depth[b])
        skeleton[a] |= first
        skeleton[b] |= both & ~first
    return skeleton & (depth >= min_depth_mm)


def laplace_thickness(gm: np.ndarray, wm: np.ndarray, spacing, *,
                      sulcal_jump_mm: float | None = SULCAL_JUMP_MM, return_depth: bool = False):
    """Thickness (mm) of the grey matter between white matter and the rest.

    Parameters
    ----------
    gm, wm : ndarray of bool
        Grey- and white-matter masks on one grid (disjoint; white matter wins
        where both are set); the rest is outside (CSF, background).
    spacing : sequence of 3 floats
        Voxel size (mm) per axis.
    sulcal_jump_mm : float or None
        Jump of the nearest white-matter point (mm) that marks the medial
        surface of a sulcus whose banks touch (:func:`sulcal_skeleton`);
        None: no sulcal reconstruction.

    Returns
    -------
    ndarray
        float32 thickness (mm), 0 outside grey matter and where a grey voxel
        has no white or no outside boundary along its field line (isolated
        grey matter).
    """
    spacing = np.asarray(spacing, float)
    pad = [(2, 2)] * _AXES
    wm = np.pad(np.asarray(wm, bool), pad)
    gm = np.pad(np.asarray(gm, bool), pad) & ~wm
    outside = ~(gm | wm)
    if sulcal_jump_mm:
        with step("thickness: sulcal skeleton", logger=log):
            sulci = sulcal_skeleton(gm, wm, spacing, jump_mm=sulcal_jump_mm)
        gm &= ~sulci
        outside |= sulci
    # grey-matter components that touch both surfaces; others have no thickness
    comp, _ = ndimage.label(gm)
    touch_w = np.unique(comp[ndimage.binary_dilation(wm) & gm])
    touch_o = np.unique(comp[ndimage.binary_dilation(outside) & gm])
    keep = np.intersect1d(touch_w, touch_o)
    gm = np.isin(comp, keep[keep > 0])
    thick = np.zeros(gm.shape, np.float32)
    if not gm.any():
        crop = thick[2:-2, 2:-2, 2:-2]
        return (crop, np.zeros_like(crop)) if return_depth else crop
    with step(f"thickness: Laplace potential over {int(gm.sum())} grey-matter voxels",
              logger=log):
        u = _solve_potential(gm, outside, spacing, tol=1e-6)
    idx = np.flatnonzero(gm)
    strides = _neighbours(gm.shape)
    flat = u.ravel()
    tangent = np.stack([(flat[idx + strides[a]] - flat[idx - strides[a]]) / (2 * spacing[a])
                        for a in range(_AXES)])
    del flat
    norm = np.linalg.norm(tangent, axis=0)
    tangent = tangent / np.maximum(norm, 1e-12)
    with step("thickness: path lengths to both surfaces", logger=log):
        l0 = _path_length(idx, tangent, u, wm.ravel(), spacing, +1)
        l1 = _path_length(idx, tangent, u, outside.ravel(), spacing, -1)
    del u
    values = l0 + l1
    ok = np.isfinite(values) & (norm > 1e-9) & (values > 0)
    thick.ravel()[idx] = np.where(ok, values, 0.0)
    if not return_depth:
        return thick[2:-2, 2:-2, 2:-2]
    depth = np.zeros(gm.shape, np.float32)
    depth.ravel()[idx] = np.where(ok, np.clip(l0 / np.where(ok, values, 1.0), 0, 1), 0.0)
    return thick[2:-2, 2:-2, 2:-2], depth[2:-2, 2:-2, 2:-2]
