"""Tissue model of the diffusion MRI phantom: compartments, tensors and fibre directions.

Every voxel is a partial-volume mixture of compartments k (CSF, GM, WM, and
GM / WM inside the lesion), each with a cylindrically symmetric tensor D_k:

    S(b, g) = sum_k f_k * S0_k * exp(-b * g^T D_k g)

This module holds the planted tissue values, the fibre directions (defined in
template space and mapped to the scanner by the inverse Jacobian of the
session's map) and the lesion fraction on the DWI grid. The acquisition (the
protocol, head motion, eddy currents, noise and the truth of one session) is
:func:`pipeline.simulate.dwi.simulate_dwi`.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.simulate.space import apply_affine, pull
from pipeline.simulate.tensor import eigenvalues_for, fractional_anisotropy
from pipeline.templates import ATLAS_THRESHOLD

__all__ = [
    "BRAIN_CENTRE_TEMPLATE", "FA_CST", "FA_GM", "FA_WM_AMPLITUDE", "FA_WM_MEAN",
    "JACOBIAN_STEP_MM", "LESION_EFFECT", "MD_CSF", "MD_GM", "MD_WM", "MIN_FRACTION",
    "S0_RELATIVE", "directions_to_scanner", "lesion_fraction", "template_directions",
    "tissue_compartments", "white_matter_fa",
]

MD_CSF = 3.0e-3
"""Isotropic diffusivity of CSF (mm^2/s, free water at 37 C)."""
MD_GM, FA_GM = 0.8e-3, 0.15
MD_WM = 0.7e-3
FA_WM_MEAN, FA_WM_AMPLITUDE = 0.50, 0.05
"""General white matter: FA = 0.50 +/- 0.05 in a smooth template-space pattern."""
FA_CST = 0.70
"""Nominal (healthy) FA of white matter in the CST (probability > 0.25)."""
S0_RELATIVE = {"wm": 1.0, "gm": 1.3, "csf": 3.5}
"""b=0 signal (proton density x exp(-TE/T2) at TE 80 ms) relative to WM."""
LESION_EFFECT = {
    # days 1-10: cytotoxic oedema restricts diffusion (ADC about 0.6 of normal, below the
    # 620e-6 mm2/s clinical core threshold) while T2 rises: DWI-bright, ADC-dark
    "subacute": {"fa": 0.6, "md": 0.6, "s0_towards_csf": 0.1},
    "chronic": {"fa": 0.5, "md": 1.6, "s0_towards_csf": 0.5},
}
"""Lesioned tissue: FA and MD factors of the underlying tissue, and the fraction
of the way its S0 moves towards the CSF value (oedema, then cavitation)."""
MIN_FRACTION = 0.02
"""Tissue fractions below this are set to 0: the template maps are 8-bit, so
"pure" white matter carries 1-3/255 of GM and CSF, and CSF's high S0 and
diffusivity would make even that floor lower the apparent FA."""
BRAIN_CENTRE_TEMPLATE = np.array([0.0, -18.0, 18.0])
JACOBIAN_STEP_MM = 6.0
"""Half-width of the central differences of the Jacobian (half the 12 mm
control spacing of the subject warp, so directions vary smoothly)."""


def _smoothstep(x, lo, hi):
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def white_matter_fa(xyz_t: np.ndarray, in_ipsi: np.ndarray, in_contra: np.ndarray,
                    cst_fa_change: float) -> np.ndarray:
    """Planted FA of white-matter tissue, (N,).

    Parameters
    ----------
    xyz_t : ndarray, shape (N, 3)
        Template coordinates (mm) of the voxels.
    in_ipsi, in_contra : ndarray of bool, shape (N,)
        Voxels of the ipsilesional / contralesional CST.
    cst_fa_change : float
        FA change of the ipsilesional CST relative to :data:`FA_CST`.

    Returns
    -------
    ndarray, shape (N,)
        :data:`FA_WM_MEAN` +/- :data:`FA_WM_AMPLITUDE` in a smooth template-space
        pattern, :data:`FA_CST` in the contralesional CST and
        ``FA_CST + cst_fa_change`` in the ipsilesional one.
    """
    fa_wm = FA_WM_MEAN + FA_WM_AMPLITUDE * (np.cos(2 * np.pi * xyz_t[:, 0] / 70.0)
                                            * np.cos(2 * np.pi * xyz_t[:, 1] / 90.0)
                                            * np.cos(2 * np.pi * xyz_t[:, 2] / 60.0))
    fa_wm[in_contra] = FA_CST
    fa_wm[in_ipsi] = FA_CST + cst_fa_change
    if np.any(fa_wm < 0) or np.any(fa_wm >= 1):
        raise ValueError("cst_fa_change puts the CST FA outside [0, 1)")
    return fa_wm


def template_directions(xyz_t: np.ndarray, cst_probability: np.ndarray):
    """Principal directions in template space: (WM, GM), each (N, 3), unit.

    WM: superior-inferior in the CST (weight 1 at probability >= 0.25),
    left-right in the corpus callosum (|x| < 12 mm, 0 < z < 35 mm, 4 mm soft
    edges), anterior-posterior elsewhere, blended by these weights. GM: radial
    from the brain centre.
    """
    x, z = xyz_t[:, 0], xyz_t[:, 2]
    w_cst = _smoothstep(cst_probability, 0.05, ATLAS_THRESHOLD)
    w_cc = (_smoothstep(12.0 - np.abs(x), -2.0, 2.0) * _smoothstep(z, -2.0, 2.0)
            * _smoothstep(35.0 - z, -2.0, 2.0))
    w_ap = 1.0 - np.maximum(w_cst, w_cc)
    wm = np.stack([w_cc, w_ap, w_cst], axis=1)
    gm = xyz_t - BRAIN_CENTRE_TEMPLATE
    gm[np.linalg.norm(gm, axis=1) < 1e-6] = (0.0, 0.0, 1.0)
    return wm, gm


def directions_to_scanner(mapping, xyz: np.ndarray, directions_t, step_mm: float):
    """Map template tangent directions to scanner ones, v_s = J^-1 v_t (unit).

    J is the Jacobian of ``mapping`` (scanner mm -> template mm), by central
    differences with ``step_mm``, so directions follow the subject's anatomy
    (scale, rotation and nonlinear warp) and the session's head pose.
    """
    jac = np.empty((len(xyz), 3, 3))
    for axis in range(3):
        delta = np.zeros(3)
        delta[axis] = step_mm
        jac[:, :, axis] = (mapping(xyz + delta) - mapping(xyz - delta)) / (2.0 * step_mm)
    out = []
    for v_t in directions_t:
        v_s = np.linalg.solve(jac, v_t[:, :, None])[:, :, 0]
        out.append(v_s / np.linalg.norm(v_s, axis=1, keepdims=True))
    return out


def lesion_fraction(lesion: nib.Nifti1Image, pose, shape, affine, voxel_mm) -> np.ndarray:
    """Lesion mask (structural grid) as a fraction on the DWI grid.

    Parameters
    ----------
    lesion : nibabel.Nifti1Image
        Lesion mask (binary or fractional) on the structural grid.
    pose : ndarray, shape (4, 4)
        DWI scanner mm -> structural scanner mm.
    shape, affine
        The DWI grid.
    voxel_mm : float
        DWI voxel size (mm); a finer lesion grid is first box-averaged to it.

    Returns
    -------
    ndarray, shape ``shape``
        Fraction in [0, 1].
    """
    data = np.asarray(lesion.dataobj, dtype=np.float32)
    ratio = voxel_mm / np.sqrt((lesion.affine[:3, :3] ** 2).sum(axis=0))
    sigma = np.where(ratio > 1, ratio / np.sqrt(12.0), 0.0)  # box average of a DWI voxel
    if np.any(sigma > 0):
        data = ndimage.gaussian_filter(data, sigma)
    moved = pull([data], lesion.affine, lambda xyz: apply_affine(pose, xyz), shape, affine)[0]
    return np.clip(moved, 0.0, 1.0)


def tissue_compartments(*, csf, gm, wm, les, fa_wm, v_wm, v_gm, lesion_stage):
    """Diffusion compartments of the brain voxels.

    Parameters
    ----------
    csf, gm, wm, les : ndarray, shape (N,)
        Tissue and lesion fractions.
    fa_wm : ndarray, shape (N,)
        Planted white-matter FA (:func:`white_matter_fa`).
    v_wm, v_gm : ndarray, shape (N, 3)
        Principal directions (scanner axes, unit) of WM and GM.
    lesion_stage : {"subacute", "chronic"} or None
        Adds lesioned GM and WM compartments (:data:`LESION_EFFECT`); None
        for no lesion.

    Returns
    -------
    compartments : list of tuple
        ``(fraction (N,), S0 relative to WM, eigenvalues (N, 3) mm^2/s,
        direction (N, 3))``: CSF, GM, WM and, with a lesion, lesioned GM and WM
        (FA and MD scaled, S0 moved towards CSF).
    ev_wm : ndarray, shape (N, 3)
        Eigenvalues of the white-matter tissue tensor.
    """
    ev_gm = np.broadcast_to(eigenvalues_for(FA_GM, MD_GM), (len(gm), 3))
    ev_wm = eigenvalues_for(fa_wm, MD_WM)
    compartments = [
        (csf, S0_RELATIVE["csf"], np.full((len(gm), 3), MD_CSF), v_wm),
        (gm * (1 - les), S0_RELATIVE["gm"], ev_gm, v_gm),
        (wm * (1 - les), S0_RELATIVE["wm"], ev_wm, v_wm),
    ]
    if lesion_stage is not None:
        effect = LESION_EFFECT[lesion_stage]
        for frac, name, ev, v in ((gm, "gm", ev_gm, v_gm), (wm, "wm", ev_wm, v_wm)):
            fa_l = fractional_anisotropy(ev) * effect["fa"]
            ev_l = eigenvalues_for(fa_l, ev.mean(axis=1) * effect["md"])
            s0 = S0_RELATIVE[name] + effect["s0_towards_csf"] * (S0_RELATIVE["csf"]
                                                                  - S0_RELATIVE[name])
            compartments.append((frac * les, s0, ev_l, v))
    return compartments, ev_wm
