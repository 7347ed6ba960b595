"""Motor-task BOLD phantom with known ground truth.

One run of a block-design task (movement of the affected hand) for one
subject-session: tissue baseline pulled from the template layers through the
session's coordinate map, activation planted in the primary-motor hand area
of each hemisphere, T1 saturation of dummy scans, slow drift, rigid head
motion and AR(1) noise. Every ingredient is returned so tests and the
pipeline's validation can compare estimates with the truth.

Conventions
-----------
* The BOLD grid is an RAS scanner grid (``grid_for_fov``), slices along its
  third axis, acquired ascending-interleaved (0, 2, 4, ..., 1, 3, ...).
* Head pose of the run: volume 0 sees the head after an extra rigid move
  ``E`` relative to the session's T1w (``session_map.with_extra_pose(E)``);
  ``BoldResult.session_from_bold`` is ``E`` (BOLD scanner mm -> T1w scanner mm).
* Head motion: ``motion[i] = (tx, ty, tz, rx, ry, rz)`` (mm, degrees) defines
  ``M_i = rigid_matrix((tx, ty, tz), (rx, ry, rz))`` (rotation
  ``Rz @ Ry @ Rx`` about the scanner-world origin, then translation). ``M_i``
  maps the position (scanner mm) of a head point at volume 0 to its position
  at volume i, so ``volume_i(x) = volume_0_motion_free_i(M_i^-1 x)``.
  Undo it with ``affine_transform(vol_i, inv(A) @ M_i @ A)`` (A: the affine).
* Events onsets are seconds from the first volume after the ``n_dummy``
  dummy scans (which are kept in the image; sidecar key ``DummyScans``).

The time courses (slice times, block design, task response, drift) are in
:mod:`pipeline.simulate.bold_timing`, the head motion and the moved head's
image in :mod:`pipeline.simulate.bold_motion`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from pipeline.simulate.bold_motion import (
    FD_RADIUS_MM,
    framewise_displacement,
    head_motion,
    head_mover,
)
from pipeline.simulate.bold_timing import (
    TRIAL_TYPE,
    block_events,
    block_response,
    slice_times,
    slow_drift,
)
from pipeline.simulate.layers import TemplateLayers
from pipeline.simulate.space import (
    SessionMap,
    apply_affine,
    grid_for_fov,
    pull,
    rigid_matrix,
    voxel_world_coords,
)
from pipeline.templates import ATLAS_THRESHOLD

__all__ = ["FD_RADIUS_MM", "TRIAL_TYPE", "BoldResult", "block_events", "block_response",
           "framewise_displacement", "simulate_bold", "slice_times"]

logger = logging.getLogger(__name__)

HAND_KNOB_TEMPLATE_MM = (37.0, -21.0, 58.0)  # x sign set by hemisphere (MNI x < 0 is left)
HAND_AREA_RADIUS_MM = 15.0
BASELINE_GM = 1000.0  # GM intensity; other tissues relative to it
RELATIVE_INTENSITY = {"gm": 1.0, "wm": 0.8, "csf": 1.25, "scalp": 0.15, "lesion": 1.15}
T1_S = {"gm": 1.4, "wm": 0.85, "csf": 4.0}  # 3 T longitudinal relaxation times
FLIP_ANGLE_DEG = 80.0
ECHO_TIME_S = 0.03
AR1_RHO = 0.3
EXTRA_POSE_MAX_MM = 2.0
EXTRA_POSE_MAX_DEG = 2.0


@dataclass
class BoldResult:
    """A simulated BOLD run and its ground truth.

    Attributes
    ----------
    image : nibabel.Nifti1Image
        4D float32 (X, Y, Z, T) on the RAS scanner grid; zooms (mm, mm, mm, TR s).
    events : pandas.DataFrame
        BIDS events: ``onset``, ``duration`` (s), ``trial_type``; onsets from
        the first volume after the dummy scans.
    sidecar : dict
        BIDS JSON sidecar (RepetitionTime, SliceTiming s, TaskName, ...).
    motion : ndarray, shape (T, 6)
        True motion of each volume relative to volume 0: tx, ty, tz (mm),
        rx, ry, rz (degrees); see the module docstring for the convention.
    truth : dict
        Scalar ground truth (laterality index, amplitudes, voxel counts,
        mean framewise displacement, ...).
    truth_maps : dict of str to nibabel.Nifti1Image
        ``activation_psc`` (percent signal change, volume-0 head position),
        ``m1_ipsilesional``, ``m1_contralesional`` (M1 masks),
        ``hand_area_ipsilesional``, ``hand_area_contralesional`` (activation
        regions after lesion exclusion), ``brain`` (intracranial GM + WM + CSF
        fraction >= 0.5), all on the BOLD grid.
    session_from_bold : ndarray, shape (4, 4)
        Rigid map from BOLD scanner mm (volume 0) to the session's T1w scanner mm.
    """

    image: nib.Nifti1Image
    events: pd.DataFrame
    sidecar: dict
    motion: np.ndarray
    truth: dict
    truth_maps: dict
    session_from_bold: np.ndarray = field(default_factory=lambda: np.eye(4))



def _lesion_fraction(lesion, session_from_bold, shape, affine, voxel_mm):
    """Lesion partial-volume fraction on the BOLD grid (resampled via world mm)."""
    if lesion is None:
        return np.zeros(shape, dtype=np.float32)
    data = (np.asarray(lesion.dataobj) > 0.5).astype(np.float32)
    lesion_vox = np.sqrt((lesion.affine[:3, :3] ** 2).sum(axis=0))
    data = ndimage.gaussian_filter(data, 0.425 * voxel_mm / lesion_vox)
    return pull([data], lesion.affine, lambda xyz: apply_affine(session_from_bold, xyz),
                shape, affine, order=1)[0]



def simulate_bold(
    *,
    rng: np.random.Generator,
    layers: TemplateLayers,
    session_map: SessionMap,
    lesion: nib.Nifti1Image | None,
    lesion_side: str,
    amplitude_ipsilesional: float,
    amplitude_contralesional: float,
    n_volumes: int = 150,
    tr_s: float = 2.0,
    voxel_mm: float = 3.0,
    block_s: float = 20.0,
    n_dummy: int = 0,
    max_translation_mm: float = 1.5,
    max_rotation_deg: float = 1.5,
    tsnr: float = 80.0,
    drift_percent: float = 1.0,
    fov_mm=(192.0, 228.0, 150.0),
    motion_interpolation: str = "linear",
) -> BoldResult:
    """Simulate one motor-task BOLD run of a subject-session.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness (same seed -> identical result).
    layers : TemplateLayers
        Template tissue and atlas layers (``template_layers()``).
    session_map : SessionMap
        Session's scanner world mm (N, 3) -> template world mm.
    lesion : nibabel.Nifti1Image or None
        Binary lesion mask on the session's T1w grid (same scanner world as
        ``session_map``'s input); its voxels get no activation.
    lesion_side : {"left", "right"}
        Ipsilesional hemisphere.
    amplitude_ipsilesional, amplitude_contralesional : float
        Peak percent signal change in each hemisphere's M1 hand area (>= 0).
    n_volumes : int
        Volumes in the image, dummy scans included.
    tr_s, voxel_mm, block_s : float
        Repetition time (s), isotropic voxel size (mm), block length (s).
    n_dummy : int
        Leading dummy scans (T1-saturated, kept in the image).
    max_translation_mm, max_rotation_deg : float
        Bound on each motion parameter (absolute value, relative to volume 0).
    tsnr : float
        Temporal SNR (baseline / noise SD); ``np.inf`` disables noise.
    drift_percent : float
        Peak-to-peak amplitude (% of baseline) of the slow drift.
    fov_mm : tuple of float
        Field of view (x, y, z) in mm, centred on the scanner origin.
    motion_interpolation : {"linear", "cubic"}
        How the moved volumes are sampled. ``"cubic"`` (B-spline) is closer to
        sampling the moved head; ``"linear"`` (trilinear, the original phantom)
        adds a blur that varies with the sub-voxel shift, i.e. a motion-locked
        intensity change beyond the rigid motion (see
        :func:`~pipeline.simulate.bold_motion.head_mover`).

    Returns
    -------
    BoldResult

    Notes
    -----
    Template layers are blurred (Gaussian, FWHM = one BOLD voxel) and pulled
    to the grid through ``session_map.with_extra_pose(E)``, ``E`` a rigid pose
    (each translation <= 2 mm, each angle <= 2 degrees). Baseline
    ``B = 1000 (1.0 gm + 0.8 wm + 1.25 csf + 0.15 scalp)``, lesion tissue 1.15.
    The hand area of a hemisphere is M1 (atlas probability > 0.25, pulled
    fraction >= 0.5) within 15 mm (template mm) of the hand knob
    (+-37, -21, 58), minus lesion (fraction >= 0.5); its PSC map is
    ``a * gm / max(gm)`` over the area. The signal of volume i, scanner slice
    k acquired at ``t = (i - n_dummy) TR + s_k`` is::

        y = [B_i (1 + P_i r(t) / 100) + S_i q**i] d(t_i) + sigma_i e_i

    with ``B_i, P_i`` the baseline and PSC maps moved by ``M_i`` (trilinear or
    cubic B-spline, ``motion_interpolation``; because resampling is linear
    this equals resampling the motion-free volume, except that each slice
    keeps its own acquisition time), ``r``
    the block regressor (boxcar * SPM HRF, isolated-block peak 1), ``S q**i``
    the T1 excess of dummy scans (only i < n_dummy; flip 80 deg, tissue T1
    GM 1.4 / WM 0.85 / CSF 4 s, ``q = E1 cos(flip)`` of CSF),
    ``d`` the drift, ``sigma_i = B_i / tsnr`` and ``e`` unit-variance AR(1)
    noise (rho 0.3). Laterality index ``LI = (A_I - A_C) / (A_I + A_C)`` with
    ``A`` the sum of planted PSC over a hemisphere's hand area (nan if both
    are 0); ``peak_hemisphere`` is the one holding the largest planted PSC
    (the activation peak; a tie counts as ipsilesional) -- not the larger
    ``A``: a weaker but larger hand area can hold more summed signal and a
    lower peak. ``mean_fd_mm`` is the mean Power FD
    (50 mm radius) over the volumes after the dummy scans. ``amplitude_*_psc``
    are the planted peaks (0 if the lesion removed the whole hand area).
    """
    if lesion_side not in ("left", "right"):
        raise ValueError(f"lesion_side must be 'left' or 'right', got {lesion_side!r}")
    if min(amplitude_ipsilesional, amplitude_contralesional) < 0:
        raise ValueError("activation amplitudes must be >= 0 (percent signal change)")
    if motion_interpolation not in ("linear", "cubic"):
        raise ValueError(f"motion_interpolation must be 'linear' or 'cubic', got {motion_interpolation!r}")
    if not 0 <= n_dummy < n_volumes:
        raise ValueError(f"need 0 <= n_dummy < n_volumes, got {n_dummy}, {n_volumes}")
    contra_side = "right" if lesion_side == "left" else "left"
    shape, affine = grid_for_fov(fov_mm, voxel_mm)

    pose = rigid_matrix(rng.uniform(-EXTRA_POSE_MAX_MM, EXTRA_POSE_MAX_MM, 3),
                        rng.uniform(-EXTRA_POSE_MAX_DEG, EXTRA_POSE_MAX_DEG, 3))
    bold_map = session_map.with_extra_pose(pose)

    sigma_vox = 0.425 * voxel_mm * session_map.warp.linear_scale / np.abs(
        np.diag(layers.affine)[:3])
    sources = [layers.gm, layers.wm, layers.csf, layers.scalp] + [
        (layers.m1[side] > ATLAS_THRESHOLD).astype(np.float32) for side in ("left", "right")]
    gm, wm, csf, scalp, m1_left, m1_right = pull(
        [ndimage.gaussian_filter(s, sigma_vox) for s in sources], layers.affine, bold_map,
        shape, affine, order=1)
    m1 = {"left": m1_left >= 0.5, "right": m1_right >= 0.5}
    lesion_frac = _lesion_fraction(lesion, pose, shape, affine, voxel_mm)
    in_lesion = lesion_frac >= 0.5

    intracranial = gm + wm + csf
    tissue = (RELATIVE_INTENSITY["gm"] * gm + RELATIVE_INTENSITY["wm"] * wm
              + RELATIVE_INTENSITY["csf"] * csf)
    tissue = (1 - lesion_frac) * tissue + lesion_frac * RELATIVE_INTENSITY["lesion"] * intracranial
    baseline = (BASELINE_GM * (tissue + RELATIVE_INTENSITY["scalp"] * scalp)).astype(np.float32)

    template_xyz = bold_map(voxel_world_coords(shape, affine)).reshape(*shape, 3)
    psc = np.zeros(shape, dtype=np.float32)
    hand_area, activation_sum, peak = {}, {}, {}
    for side, amplitude in ((lesion_side, amplitude_ipsilesional),
                            (contra_side, amplitude_contralesional)):
        knob = np.array(HAND_KNOB_TEMPLATE_MM) * (-1 if side == "left" else 1, 1, 1)
        near = np.linalg.norm(template_xyz - knob, axis=-1) <= HAND_AREA_RADIUS_MM
        area = m1[side] & near & ~in_lesion & (gm > 0.05)
        hand_area[side] = area
        if area.any() and amplitude > 0:
            psc[area] = amplitude * gm[area] / gm[area].max()
        activation_sum[side] = float(psc[area].sum())
        peak[side] = float(psc[area].max()) if area.any() else 0.0

    # T1 excess of dummy scans: M(first)/M(steady) - 1, decaying by E1 cos(flip) per TR.
    cos_flip = np.cos(np.deg2rad(FLIP_ANGLE_DEG))
    excess = np.zeros(shape, dtype=np.float32)
    decay = 0.0
    for name, frac in (("gm", gm), ("wm", wm), ("csf", csf)):
        e1 = np.exp(-tr_s / T1_S[name])
        excess += BASELINE_GM * RELATIVE_INTENSITY[name] * frac * e1 * (1 - cos_flip) / (1 - e1)
        decay = max(decay, e1 * cos_flip)

    volume_times = (np.arange(n_volumes) - n_dummy) * tr_s
    events = block_events(n_volumes=n_volumes - n_dummy, tr_s=tr_s, block_s=block_s)
    acq_times = volume_times[:, None] + slice_times(shape[2], tr_s)[None, :]
    regressor = block_response(events, acq_times.ravel()).reshape(acq_times.shape)
    boxcar = np.zeros(n_volumes)
    for onset, duration in zip(events["onset"], events["duration"], strict=True):
        boxcar[(volume_times >= onset) & (volume_times < onset + duration)] = 1.0

    drift = slow_drift(rng, volume_times, drift_percent)
    motion = head_motion(rng, n_volumes=n_volumes, task_boxcar=boxcar,
                          max_translation_mm=max_translation_mm,
                          max_rotation_deg=max_rotation_deg)

    order = 3 if motion_interpolation == "cubic" else 1
    move_baseline = head_mover(baseline, affine, order=order)
    move_psc = head_mover(baseline * psc / 100.0, affine, order=order)
    move_excess = head_mover(excess, affine, order=order)
    data = np.empty((*shape, n_volumes), dtype=np.float32)
    noise = np.zeros(shape, dtype=np.float32)
    innovation_sd = np.float32(np.sqrt(1 - AR1_RHO**2))
    for i in range(n_volumes):
        move = rigid_matrix(motion[i, :3], motion[i, 3:])
        moved_baseline = move_baseline(move)
        volume = moved_baseline + move_psc(move) * regressor[i]
        if i < n_dummy:
            volume += move_excess(move) * np.float32(decay**i)
        volume *= np.float32(drift[i])
        if np.isfinite(tsnr):
            white = rng.standard_normal(shape, dtype=np.float32)
            noise = white if i == 0 else np.float32(AR1_RHO) * noise + innovation_sd * white
            volume += noise * moved_baseline / np.float32(tsnr)
        data[..., i] = volume

    image = nib.Nifti1Image(data, affine)
    image.header.set_zooms((voxel_mm, voxel_mm, voxel_mm, tr_s))
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_dim_info(slice=2)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)

    sidecar = {
        "TaskName": "motor",
        "RepetitionTime": float(tr_s),
        "EchoTime": ECHO_TIME_S,
        "FlipAngle": FLIP_ANGLE_DEG,
        "SliceTiming": [float(t) for t in slice_times(shape[2], tr_s)],
        "SliceEncodingDirection": "k",
        "PhaseEncodingDirection": "j-",
        "MagneticFieldStrength": 3,
        "DummyScans": int(n_dummy),
        "TaskDescription": ("Blocked movement of the affected hand (rest first). The first "
                            "DummyScans volumes are T1-unsaturated dummy scans kept in the file; "
                            "events.tsv onsets are relative to the first volume after them."),
    }

    a_ipsi, a_contra = activation_sum[lesion_side], activation_sum[contra_side]
    total = a_ipsi + a_contra
    laterality = (a_ipsi - a_contra) / total if total > 0 else float("nan")
    fd = framewise_displacement(motion[n_dummy:])
    truth = {
        "laterality_index": float(laterality),
        "amplitude_ipsilesional_psc": peak[lesion_side],
        "amplitude_contralesional_psc": peak[contra_side],
        "activated_voxels_ipsilesional": int((psc[hand_area[lesion_side]] > 0).sum()),
        "activated_voxels_contralesional": int((psc[hand_area[contra_side]] > 0).sum()),
        "hand_area_voxels_ipsilesional": int(hand_area[lesion_side].sum()),
        "hand_area_voxels_contralesional": int(hand_area[contra_side].sum()),
        "n_volumes": int(n_volumes),
        "n_dummy": int(n_dummy),
        "tr_s": float(tr_s),
        "mean_fd_mm": float(fd[1:].mean()) if fd.size > 1 else 0.0,
        "max_fd_mm": float(fd.max()),
        "peak_hemisphere": ("none" if total == 0 else
                            "ipsilesional" if peak[lesion_side] >= peak[contra_side]
                            else "contralesional"),
        "task_effect": bool(total > 0),
        "lesion_voxels_bold": int(in_lesion.sum()),
    }

    def as_image(array, dtype):
        return nib.Nifti1Image(np.asarray(array, dtype=dtype), affine)

    truth_maps = {
        "activation_psc": as_image(psc, np.float32),
        "m1_ipsilesional": as_image(m1[lesion_side], np.uint8),
        "m1_contralesional": as_image(m1[contra_side], np.uint8),
        "hand_area_ipsilesional": as_image(hand_area[lesion_side], np.uint8),
        "hand_area_contralesional": as_image(hand_area[contra_side], np.uint8),
        "brain": as_image(intracranial >= 0.5, np.uint8),
    }
    logger.info("simulated BOLD %s x %d vols, LI %.3f, mean FD %.3f mm",
                shape, n_volumes, laterality, truth["mean_fd_mm"])
    return BoldResult(image, events, sidecar, motion, truth, truth_maps, pose)
