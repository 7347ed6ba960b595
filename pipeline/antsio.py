"""Conversions between nibabel and ANTsPy images (RAS <-> ITK's LPS handled by ANTsPy)."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np

ANTS_SEED = 20251121
LPS = np.diag([-1.0, -1.0, 1.0])
"""ITK physical space is LPS; nibabel world space is RAS = diag(-1, -1, 1) LPS."""


def set_threads(n: int, *, seed: int = ANTS_SEED) -> None:
    """Thread count for ITK/ANTs and BLAS, and the ANTs sampling seed.

    Call before ANTs is imported. ANTs' random metric sampling reads
    ``ANTS_RANDOM_SEED``; with a fixed seed and thread count, registrations
    repeat exactly. The BLAS of NumPy is already loaded by then, so its pool is
    limited with threadpoolctl (the environment variables reach child processes):
    a job of ``n`` threads uses ``n`` cores, not every core of the node.
    """
    for var in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(int(n))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(int(n), 1))
    os.environ.setdefault("ANTS_RANDOM_SEED", str(int(seed)))
    try:  # ANTsPy passes its own configured seed to antsRegistration when set
        import ants.config

        ants.config._random_seed = int(os.environ["ANTS_RANDOM_SEED"])
    except ImportError:  # pragma: no cover - ants is a hard dependency
        pass


def read_ants_affine(path) -> np.ndarray:
    """4x4 RAS matrix of an ANTs/ITK affine ``.mat`` file (fixed -> moving points).

    Parameters
    ----------
    path : str or Path
        ``AffineTransform_float_3_3`` (or double) file written by ANTs.

    Returns
    -------
    ndarray, shape (4, 4)
        ``y_ras = M @ [x_ras, 1]`` in world mm.

    Notes
    -----
    ITK stores ``y = A (x - c) + t + c`` in LPS coordinates with ``c`` the
    fixed centre; RAS = diag(-1, -1, 1) LPS.
    """
    from scipy.io import loadmat

    mat = loadmat(str(path))
    key = next(k for k in mat if k.startswith("AffineTransform"))
    params = np.asarray(mat[key], dtype=float).ravel()
    center = np.asarray(mat["fixed"], dtype=float).ravel()
    a = params[:9].reshape(3, 3)
    t = params[9:12]
    offset = t + center - a @ center
    out = np.eye(4)
    out[:3, :3] = LPS @ a @ LPS
    out[:3, 3] = LPS @ offset
    return out


def to_ants(img: nib.Nifti1Image):
    """nibabel image -> ANTsImage (float32, spatial units forced to mm)."""
    import ants

    data = np.asarray(img.dataobj, dtype=np.float32)
    out = nib.Nifti1Image(data, img.affine)
    out.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(out)


def from_ants(image) -> nib.Nifti1Image:
    """ANTsImage -> nibabel image (float32)."""
    import ants

    out = ants.to_nibabel_nifti(image)
    return nib.Nifti1Image(np.asarray(out.dataobj, dtype=np.float32), out.affine)


def resample_through(image: nib.Nifti1Image, reference: nib.Nifti1Image, transforms, *,
                     interpolator: str = "linear") -> nib.Nifti1Image:
    """``image`` resampled onto the grid of ``reference`` through ANTs transform
    files (one path or a list in ``ants.apply_transforms`` order)."""
    import ants

    transforms = [transforms] if isinstance(transforms, (str, os.PathLike)) else transforms
    out = ants.apply_transforms(fixed=to_ants(reference), moving=to_ants(image),
                                transformlist=[str(t) for t in transforms],
                                interpolator=interpolator)
    return from_ants(out)
