"""Diffusion MRI phantom: one session's DWI series from known diffusion tensors.

Tissue fractions and corticospinal-tract (CST) probabilities are pulled from
template space into the DWI grid (see :mod:`pipeline.simulate.space`). Every
voxel is a partial-volume mixture of compartments (CSF, GM, WM, and GM / WM
inside the lesion), each with a cylindrically symmetric tensor; the tissue
values, fibre directions and compartments are in
:mod:`pipeline.simulate.dwi_tissue`.

Head motion moves the whole head between volumes while the gradient stays
fixed in the scanner: each volume is computed with the gradient expressed in
the head frame and then resampled into the scanner grid by a cubic B-spline
(see :data:`MOTION_SPLINE_ORDER`). Eddy currents shift each volume along the
phase-encode axis (y), and so does a susceptibility field (optional, with a reverse
phase-encoding b=0). Rician noise comes last.

The FA / MD / v1 truth maps are those of the single tensor that best fits the
noiseless signal of each voxel on the acquired protocol (what an ideal DTI
pipeline measures); the planted tissue values are kept as scalar truths.

Coordinate convention: the image affine is diagonal with positive voxel sizes
(RAS, determinant > 0), so voxel axes i, j, k are the scanner world axes
x (left -> right), y (posterior -> anterior), z (inferior -> superior).
``bvecs`` are given in these voxel axes (as dipy reads them); FSL-convention
tools negate x for such an image, see :func:`bvecs_fsl_convention`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from pipeline.simulate.dwi_tissue import (
    FA_CST,
    FA_WM_MEAN,
    JACOBIAN_STEP_MM,
    LESION_EFFECT,
    MD_WM,
    MIN_FRACTION,
    directions_to_scanner,
    lesion_fraction,
    template_directions,
    tissue_compartments,
    white_matter_fa,
)
from pipeline.simulate.layers import TemplateLayers
from pipeline.simulate.motion import move_head, random_motion, rician
from pipeline.simulate.space import SessionMap, grid_for_fov, pull, rigid_matrix, voxel_world_coords
from pipeline.simulate.susceptibility import distort, field_shape, polarity, reverse_code
from pipeline.simulate.tensor import adc_signal, fit_single_tensor, fractional_anisotropy, gradient_scheme
from pipeline.templates import ATLAS_THRESHOLD

__all__ = ["MOTION_SPLINE_ORDER", "SIDECAR", "WM_SIGNAL_B0", "DwiResult", "simulate_dwi"]

logger = logging.getLogger(__name__)

WM_SIGNAL_B0 = 1000.0
"""Image value of pure white matter at b=0."""
MOTION_SPLINE_ORDER = 3
"""Spline order of the resampling that moves the head between volumes. A scanner
samples the moved head without blurring it (an MR image is band-limited, and a
band-limited image moves exactly by sinc interpolation); a cubic B-spline is
close to that. Trilinear resampling low-pass filtered every moved volume by a
different sub-voxel amount and lowered the CST FA by about 0.02 at 2 mm, a
loss no preprocessing can undo."""
SIDECAR = {
    "PhaseEncodingDirection": "j-",
    "TotalReadoutTime": 0.05,
    "EchoTime": 0.08,
    "RepetitionTime": 8.0,
    "FlipAngle": 90,
    "MRAcquisitionType": "2D",
    "MagneticFieldStrength": 3.0,
    "Manufacturer": "RESSTORE phantom",
}


@dataclass
class DwiResult:
    """One simulated DWI acquisition and its truth.

    Attributes
    ----------
    image : nibabel.Nifti1Image
        4D float32 DWI series, RAS affine (diagonal, positive voxel sizes).
    bvals : ndarray, shape (n,)
        b-values (s/mm^2); exactly 0 for b=0 volumes.
    bvecs : ndarray, shape (3, n)
        Unit gradient directions in the image's voxel axes, which here equal
        the scanner world RAS axes; zeros for b=0. NOT rotated for head motion.
        dipy (``gradient_table``) takes them as they are. FSL-convention readers
        (FSL, MRtrix ``-fslgrad``) negate x for a positive-determinant image, so
        write ``bvecs_fsl_convention(bvecs, image.affine)`` to a .bvec for them.
    sidecar : dict
        BIDS JSON sidecar fields.
    motion : ndarray, shape (n, 6)
        True head pose per volume relative to volume 0: tx, ty, tz (mm), rx,
        ry, rz (degrees), as ``rigid_matrix(motion[i, :3], motion[i, 3:])``
        mapping a head point at its volume-0 position to its volume-i position
        (scanner mm, rotation about the scanner origin).
    truth : dict
        Scalar truths (FA dimensionless, MD mm^2/s), see :func:`simulate_dwi`.
    truth_maps : dict of nibabel.Nifti1Image
        On the DWI grid at the volume-0 head position: ``fa``, ``md``, ``v1``
        (4D, 3 components, scanner axes) of the single tensor best fitting the
        noiseless signal (see :func:`simulate_dwi`), ``lesion`` (fraction),
        ``cst_ipsilesional`` / ``cst_contralesional`` (uint8 masks of the
        voxels the CST truths average over).
    extra_pose : ndarray, shape (4, 4)
        Rigid head move of this acquisition since the session's structural
        scans: a point at DWI scanner mm x sits at ``extra_pose @ x`` in the
        structural (T1w) scanner world.
    reverse_b0 : nibabel.Nifti1Image or None
        A b=0 of the opposite phase-encoding polarity (3D), with ``reverse_sidecar``.
    """

    image: nib.Nifti1Image
    bvals: np.ndarray
    bvecs: np.ndarray
    sidecar: dict
    motion: np.ndarray
    truth: dict
    truth_maps: dict
    extra_pose: np.ndarray
    reverse_b0: nib.Nifti1Image | None = None
    reverse_sidecar: dict | None = None


def simulate_dwi(
    *,
    rng: np.random.Generator,
    layers: TemplateLayers,
    session_map: SessionMap,
    lesion: nib.Nifti1Image | None,
    lesion_stage: str | None,
    lesion_side: str,
    cst_fa_change: float = 0.0,
    voxel_mm: float = 2.0,
    n_b0: int = 3,
    n_directions: int = 30,
    bval: float = 1000.0,
    max_translation_mm: float = 1.0,
    max_rotation_deg: float = 1.0,
    eddy_mm: float = 0.3,
    eddy_linear: float = 0.0,
    snr_b0: float = 25.0,
    fov_mm=(200.0, 232.0, 160.0),
    pose_translation_mm: float = 1.5,
    pose_rotation_deg: float = 1.5,
    susceptibility_mm: float = 0.0,
    reverse_b0: bool = False,
) -> DwiResult:
    """Simulate a single-shell DWI series of one session with its truth.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws, in order, the acquisition pose, the head motion and the noise.
    layers : TemplateLayers
    session_map : SessionMap
        The session's structural scanner world (mm) -> template world (mm).
    lesion : nibabel.Nifti1Image or None
        Lesion mask (binary or fractional) on the session's structural grid.
    lesion_stage : {"subacute", "chronic"} or None
        Required when ``lesion`` is given.
    lesion_side : {"left", "right"}
        Ipsilesional hemisphere (template x < 0 is left), also without lesion.
    cst_fa_change : float
        FA change of ipsilesional CST white matter outside the lesion relative
        to :data:`FA_CST` (MD kept at :data:`MD_WM`).
    voxel_mm : float
        Isotropic voxel size (mm).
    n_b0, n_directions, bval
        Protocol, see :func:`gradient_scheme`; ``bval`` in s/mm^2.
    max_translation_mm, max_rotation_deg : float
        Bounds of the within-series head motion (mm, degrees).
    eddy_mm : float
        Eddy-current shift along y (mm) per unit y component of the gradient.
    eddy_linear : float
        Eddy-current field linear in position (Jezzard et al. 1998): the image point
        at scanner (x, y, z) moves along y (phase encoding) by
        ``eddy_linear * (g . (x, y, z))`` for gradient g: shear along y by g_x and
        g_z, scale by g_y (0.01 = 1 % per unit gradient component; 0 = shift only).
    snr_b0 : float
        Mean b=0 white-matter signal over the Rician sigma; ``np.inf`` for none.
    fov_mm : tuple of float
        Field of view (x, y, z) in mm, centred on the scanner origin.
    pose_translation_mm, pose_rotation_deg : float
        Bounds (per axis, uniform) of the head move since the structural scans.
    susceptibility_mm : float
        Peak (in the brain) of the susceptibility displacement along y
        (:mod:`pipeline.simulate.susceptibility`), fixed in the scanner, applied after
        motion and eddy currents; the ``field`` truth map is the series' own
        displacement (mm along +y) at each undistorted point.
    reverse_b0 : bool
        Also acquire one b=0 of the opposite phase-encoding polarity (its noise from a
        spawned generator, so the other draws do not change).

    Returns
    -------
    DwiResult
        ``truth`` holds ``fa_cst_ipsilesional``, ``fa_cst_contralesional``,
        ``md_cst_ipsilesional``, ``md_cst_contralesional`` (mean planted
        WM-tissue values in voxels with WM fraction > 0.9, CST probability
        > 0.25 and no lesion), ``fa_nawm`` / ``md_nawm`` (same, outside both
        CSTs), the same six with the suffix ``_apparent`` (means of the ``fa`` /
        ``md`` truth maps over the same voxels, partial volume included),
        ``fa_lesion`` / ``md_lesion`` (mean of the ``fa`` / ``md`` truth maps
        where the lesion fraction >= 0.5; nan without lesion), ``n_volumes``,
        ``n_b0``, ``shells``, ``voxel_mm``, ``snr_b0``, ``lesion_side``,
        ``lesion_stage``, ``cst_fa_change``.

    Notes
    -----
    Compartments: CSF (isotropic 3.0e-3 mm^2/s), GM (FA 0.15, MD 0.8e-3,
    radial direction), WM (MD 0.7e-3, FA 0.45-0.55, 0.70 in the CST) and, in
    the lesion fraction L, the GM and WM tensors with FA and MD scaled
    (subacute x0.6 / x1.1, chronic x0.5 / x1.6) and S0 raised towards CSF.
    Fibre directions are defined in template space and mapped to the scanner
    by the inverse Jacobian of the map (see
    :func:`~pipeline.simulate.dwi_tissue.directions_to_scanner`).

    The ``fa`` / ``md`` / ``v1`` truth maps are those of the single tensor
    that best fits the voxel's noiseless, motion-free signal on this protocol
    (:func:`fit_single_tensor`): the target of a DTI pipeline, whose only
    losses are then its own. A voxel mixing compartments is not a single
    tensor; the fit differs from the tissue tensor (a few percent of GM or CSF
    in "pure" white matter lowers the CST FA by about 0.013) and from the
    signal-weighted mean tensor, the b -> 0 limit (by more than 0.02 FA in 40 %
    of brain voxels, where CSF mixes in). The scalar ``fa_cst_*`` / ``md_cst_*``
    / ``fa_nawm`` / ``md_nawm`` truths are the planted *tissue* values (the
    trial's effects act on them); the ``*_apparent`` ones average the truth maps
    over the same voxels and are what a measurement should be compared with.
    """
    if lesion_side not in ("left", "right"):
        raise ValueError(f"lesion_side must be 'left' or 'right', not {lesion_side!r}")
    if lesion is not None and lesion_stage not in LESION_EFFECT:
        raise ValueError(f"lesion_stage must be one of {sorted(LESION_EFFECT)} with a lesion")
    contra_side = "right" if lesion_side == "left" else "left"

    shape, affine = grid_for_fov(fov_mm, voxel_mm)
    pose = rigid_matrix(rng.uniform(-pose_translation_mm, pose_translation_mm, 3),
                        rng.uniform(-pose_rotation_deg, pose_rotation_deg, 3))
    dwi_map = session_map.with_extra_pose(pose)
    bvals, bvecs = gradient_scheme(n_b0=n_b0, n_directions=n_directions, bval=bval)
    n_volumes = len(bvals)
    motion = random_motion(rng, n_volumes, max_translation_mm=max_translation_mm,
                           max_rotation_deg=max_rotation_deg)

    gm3, wm3, csf3, ipsi3, contra3 = pull(
        [layers.gm, layers.wm, layers.csf, layers.cst[lesion_side], layers.cst[contra_side]],
        layers.affine, dwi_map, shape, affine, order=1,
    )
    les3 = np.zeros(shape, np.float32)
    if lesion is not None:
        les3 = lesion_fraction(lesion, pose, shape, affine, voxel_mm)
    for fraction in (gm3, wm3, csf3):
        fraction[fraction < MIN_FRACTION] = 0.0
    brain = (gm3 + wm3 + csf3) > 0
    gm, wm, csf, ipsi_p, contra_p, les = (a[brain].astype(float)
                                          for a in (gm3, wm3, csf3, ipsi3, contra3, les3))
    xyz = voxel_world_coords(shape, affine)[brain.ravel()]
    xyz_t = dwi_map(xyz)

    # White-matter FA: smooth pattern, CST value in CST (ipsilesional changed).
    in_ipsi = (ipsi_p > ATLAS_THRESHOLD) & (ipsi_p >= contra_p)
    in_contra = (contra_p > ATLAS_THRESHOLD) & (contra_p > ipsi_p)
    fa_wm = white_matter_fa(xyz_t, in_ipsi, in_contra, cst_fa_change)

    v_wm_t, v_gm_t = template_directions(xyz_t, np.maximum(ipsi_p, contra_p))
    v_wm, v_gm = directions_to_scanner(dwi_map, xyz, (v_wm_t, v_gm_t), step_mm=JACOBIAN_STEP_MM)

    # Compartments: (fraction, S0, eigenvalues (N, 3), direction (N, 3)).
    compartments, ev_wm = tissue_compartments(
        csf=csf, gm=gm, wm=wm, les=les, fa_wm=fa_wm, v_wm=v_wm, v_gm=v_gm,
        lesion_stage=lesion_stage if lesion is not None else None)

    # Truth maps: the single tensor fitting the noiseless signal at the volume-0 pose.
    still = np.column_stack([adc_signal(compartments, bvals[i], bvecs[:, i])
                             for i in range(n_volumes)])
    evals, evecs = fit_single_tensor(still, bvals, bvecs)
    del still
    fa_map = fractional_anisotropy(evals)
    md_map = evals.mean(axis=1)
    v1 = evecs[:, :, 2] * (fa_map > 1e-3)[:, None]

    def to_grid(values, dtype=np.float32):
        out = np.zeros(shape + np.shape(values)[1:], dtype=dtype)
        out[brain] = values
        return out

    # Signal per volume, head frame gradient g_head = R_i^T g, then motion + eddy.
    sign = polarity(SIDECAR["PhaseEncodingDirection"])
    field_mm = np.zeros(shape, np.float32)
    if susceptibility_mm:
        shape_t = field_shape(dwi_map(voxel_world_coords(shape, affine))).reshape(shape)
        field_mm = (shape_t * susceptibility_mm / shape_t[brain].max()).astype(np.float32)
    field_vox = field_mm / voxel_mm
    data = np.zeros(shape + (n_volumes,), dtype=np.float32)
    for i in range(n_volumes):
        head_pose = rigid_matrix(motion[i, :3], motion[i, 3:])
        g_head = head_pose[:3, :3].T @ bvecs[:, i]
        volume = to_grid(adc_signal(compartments, bvals[i], g_head) * WM_SIGNAL_B0)
        distortion = np.eye(4)
        distortion[1, 3] = eddy_mm * bvecs[1, i]
        distortion[1, :3] += eddy_linear * bvecs[:, i]
        data[..., i] = move_head(volume, affine, head_pose, order=MOTION_SPLINE_ORDER,
                                 distortion=distortion)
        if susceptibility_mm:
            data[..., i] = distort(data[..., i], field_vox, sign, axis=1)
    reverse = None
    if reverse_b0:
        reverse = distort(to_grid(adc_signal(compartments, 0.0, bvecs[:, 0]) * WM_SIGNAL_B0),
                          field_vox, -sign, axis=1)

    pure_wm = (wm > 0.9) & (les < 0.01)
    b0_wm = data[..., 0][brain][pure_wm]
    sigma = float(b0_wm.mean()) / snr_b0 if b0_wm.size and np.isfinite(snr_b0) else 0.0
    if sigma > 0:
        for i in range(n_volumes):
            data[..., i] = rician(rng, data[..., i], np.float32(sigma))
        if reverse is not None:
            reverse = rician(rng.spawn(1)[0], reverse, np.float32(sigma))
    logger.info("DWI phantom: %s volumes on %s at %.1f mm, noise sigma %.1f",
                n_volumes, shape, voxel_mm, sigma)

    def mean_of(values, mask, default=np.nan):
        return float(values[mask].mean()) if mask.any() else float(default)

    cst_ipsi = pure_wm & in_ipsi
    cst_contra = pure_wm & in_contra
    nawm = pure_wm & ~(ipsi_p > ATLAS_THRESHOLD) & ~(contra_p > ATLAS_THRESHOLD)
    md_wm = ev_wm.mean(axis=1)
    lesioned = les >= 0.5
    truth = {
        "fa_cst_ipsilesional": mean_of(fa_wm, cst_ipsi, FA_CST + cst_fa_change),
        "fa_cst_contralesional": mean_of(fa_wm, cst_contra, FA_CST),
        "md_cst_ipsilesional": mean_of(md_wm, cst_ipsi, MD_WM),
        "md_cst_contralesional": mean_of(md_wm, cst_contra, MD_WM),
        "fa_nawm": mean_of(fa_wm, nawm, FA_WM_MEAN),
        "md_nawm": mean_of(md_wm, nawm, MD_WM),
        "fa_cst_ipsilesional_apparent": mean_of(fa_map, cst_ipsi),
        "fa_cst_contralesional_apparent": mean_of(fa_map, cst_contra),
        "md_cst_ipsilesional_apparent": mean_of(md_map, cst_ipsi),
        "md_cst_contralesional_apparent": mean_of(md_map, cst_contra),
        "fa_nawm_apparent": mean_of(fa_map, nawm),
        "md_nawm_apparent": mean_of(md_map, nawm),
        "fa_lesion": mean_of(fa_map, lesioned),
        "md_lesion": mean_of(md_map, lesioned),
        "n_volumes": int(n_volumes),
        "n_b0": int(n_b0),
        "shells": sorted({float(b) for b in bvals if b > 0}),
        "voxel_mm": float(voxel_mm),
        "snr_b0": float(snr_b0),
        "lesion_side": lesion_side,
        "lesion_stage": lesion_stage if lesion is not None else None,
        "cst_fa_change": float(cst_fa_change),
    }

    def image(array):
        img = nib.Nifti1Image(array, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        img.header.set_xyzt_units("mm", "sec")
        return img

    dwi = image(data)
    dwi.header["pixdim"][4] = SIDECAR["RepetitionTime"]
    sidecar = dict(SIDECAR, EffectiveEchoSpacing=SIDECAR["TotalReadoutTime"] / (shape[1] - 1))
    truth_maps = {
        "fa": image(to_grid(fa_map)),
        "md": image(to_grid(md_map)),
        "v1": image(to_grid(v1)),
        "lesion": image(les3),
        "cst_ipsilesional": image(to_grid(cst_ipsi, np.uint8)),
        "cst_contralesional": image(to_grid(cst_contra, np.uint8)),
        "field": image(sign * field_mm),
    }
    reverse_sidecar = None
    if reverse is not None:
        reverse_sidecar = dict(sidecar, PhaseEncodingDirection=reverse_code(
            SIDECAR["PhaseEncodingDirection"]))
        reverse = image(reverse)
        reverse.header["pixdim"][4] = SIDECAR["RepetitionTime"]
    return DwiResult(dwi, bvals, bvecs, sidecar, motion, truth, truth_maps, pose, reverse,
                     reverse_sidecar)
