"""Structural phantoms: T1w and FLAIR of one session, with lesion and thinning.

Tissue fractions are pulled from template space into the session's scanner
grid (see :mod:`pipeline.simulate.space`), the lesion is drawn in the
scanner grid so that its truth mask is exactly the voxels that were painted,
and intensities follow a partial-volume mixture model:

    I = B(x) * sum_k f_k(x) * mu_k  (+ Rician noise)

with B a smooth multiplicative bias field and mu_k tissue intensities per
contrast (T1w: WM > GM > CSF; FLAIR: GM > WM >> CSF). A subacute lesion is
FLAIR-hyperintense and T1-hypointense; a chronic lesion is smaller, with a
cavitated CSF-like core and a gliotic FLAIR-hyperintense rim.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline import templates
from pipeline.qc.iqm import largest_component
from pipeline.simulate.contrast import TEMPLATE_CONTRAST, TissueContrast, gm_multiplier
from pipeline.simulate.layers import TemplateLayers
from pipeline.simulate.space import SessionMap, apply_affine, grid_for_fov, pull
from pipeline.templates import ATLAS_THRESHOLD

# Relative intensities (WM T1w = 1).
T1W_INTENSITY = {"wm": 1.00, "gm": 0.62, "csf": 0.18, "skull": 0.08, "scalp": 0.85,
                 "lesion_subacute": 0.42, "lesion_core": 0.20, "lesion_rim": 0.50}
FLAIR_INTENSITY = {"wm": 0.55, "gm": 0.72, "csf": 0.08, "skull": 0.05, "scalp": 0.55,
                   "lesion_subacute": 1.05, "lesion_core": 0.12, "lesion_rim": 1.00}
MIDLINE_MARGIN_MM = 2.0
"""Half-width (mm) of the falx: a planted infarct keeps this far from template x = 0."""
HAND_KNOB_MNI = {"left": (-37.0, -21.0, 58.0), "right": (37.0, -21.0, 58.0)}
DEFAULT_FOV_MM = (180.0, 216.0, 180.0)


@dataclass
class LesionPlan:
    """Where and how large one subject's lesion is (template space).

    Attributes
    ----------
    side : {"left", "right"}
    seed_mni : tuple of float
        Centre of the infarct in template mm.
    volume_ml : float
        Target baseline volume (native mL).
    chronic_fraction : float
        Volume at 6 months as a fraction of baseline (oedema resolves, tissue
        retracts).
    radius_mm : float
        Scale of the distance field the lesion is grown from.
    noise : ndarray
        Smooth field (template grid, coarse) that makes the boundary irregular.
    """

    side: str
    seed_mni: tuple
    volume_ml: float
    chronic_fraction: float
    radius_mm: float
    noise_affine: np.ndarray = field(repr=False)
    noise: np.ndarray = field(repr=False)


def plan_lesion(rng, layers: TemplateLayers, *, side: str, volume_ml: float,
                chronic_fraction: float = 0.75) -> LesionPlan:
    """Draw an infarct centre inside the MCA territory of ``side``.

    The seed is drawn from tissue (GM+WM > 0.5) inside the hemisphere's MCA
    territory (Harvard-Oxford regions, see :data:`pipeline.templates.MCA_REGIONS`),
    weighted towards deep (subcortical / corona radiata) voxels, which are the
    commonest site of motor strokes.
    """
    territory = ndimage.binary_dilation(layers.mca[side] > 0.3, iterations=6)
    tissue = (layers.gm + layers.wm) > 0.5
    candidates = np.argwhere(territory & tissue & layers.hemisphere(side))
    xyz = apply_affine(layers.affine, candidates.astype(float))
    depth = np.abs(xyz[:, 0])
    # deep infarcts near |x| ~ 25 mm, z between -5 and 35 mm; cortical ones allowed
    weight = np.exp(-((depth - 28.0) / 10.0) ** 2) * ((xyz[:, 2] > -5) & (xyz[:, 2] < 40)) + 0.05
    # Gumbel-max draw from ``weight`` with the noise indexed by template voxel,
    # not by position in ``candidates``: the territory comes through a SyN that
    # is not bit-reproducible across processes (fsl_to_2009a), and a draw by
    # list position moved the lesion by centimetres when one voxel changed.
    gumbel = np.random.default_rng(rng.integers(2**63)).gumbel(size=layers.gm.shape)
    score = np.log(weight) + gumbel[tuple(candidates.T)]
    seed = xyz[int(np.argmax(score))]
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    shape = (24, 28, 24)
    noise_affine = np.diag([8.0, 8.0, 8.0, 1.0])
    noise_affine[:3, 3] = seed - 8.0 * (np.asarray(shape) - 1) / 2.0
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 1.2)
    noise /= noise.std()
    return LesionPlan(side, tuple(float(v) for v in seed), float(volume_ml),
                      float(chronic_fraction), float(radius), noise_affine, noise.astype(np.float32))


def lesion_field(plan: LesionPlan, xyz_template: np.ndarray) -> np.ndarray:
    """Scalar field, larger closer to the lesion core (dimensionless)."""
    dist = np.linalg.norm(xyz_template - np.asarray(plan.seed_mni), axis=1) / plan.radius_mm
    ijk = apply_affine(np.linalg.inv(plan.noise_affine), xyz_template).T
    rough = ndimage.map_coordinates(plan.noise, ijk, order=1, mode="nearest")
    return (-dist + 0.45 * rough).astype(np.float32)


def _top_voxels(values: np.ndarray, eligible: np.ndarray, count: int) -> np.ndarray:
    """Boolean mask of the ``count`` eligible voxels with the largest values."""
    mask = np.zeros(values.shape, dtype=bool)
    idx = np.flatnonzero(eligible)
    if count <= 0 or idx.size == 0:
        return mask
    count = min(count, idx.size)
    order = np.argpartition(values.ravel()[idx], -count)[-count:]
    mask.ravel()[idx[order]] = True
    return mask


# second difference of the distance to white matter (voxels) that makes a crease
CREASE_MIN_VOXELS = 0.5
# a crease lies deeper than the grey matter touching white matter (1 mm minimum
# took 900 such voxels of M1 on the template, most with white matter on both sides)
CREASE_MIN_DEPTH_MM = 1.5


def sulcal_crease(grey: np.ndarray, white: np.ndarray, voxel_mm: float) -> np.ndarray:
    """Grey-matter voxels on the medial surface where two banks of a sulcus touch.

    The phantom's own definition, independent of the pipeline's
    (:func:`pipeline.anat.laplace.sulcal_skeleton` finds voxels whose nearest
    white-matter point jumps): the crease of the distance to white matter. Across
    touching banks that distance rises from each bank's white matter and meets in
    a tent, so along some axis a medial voxel is at least as far as both
    neighbours and the second difference is 2|n_k| or |n_k| voxel (n the bank's
    normal; max over axes >= 0.58); along a smooth cortex (a local maximum of the
    thickness) it is near zero. At least :data:`CREASE_MIN_DEPTH_MM` from white matter.
    """
    depth = ndimage.distance_transform_edt(~white).astype(np.float32)
    crease = np.zeros(grey.shape, bool)
    for axis in range(3):
        before, after = np.roll(depth, 1, axis), np.roll(depth, -1, axis)
        # strict on one side: of a flat top two voxels wide, one is the crease
        crease |= ((depth > before) & (depth >= after)
                   & (2 * depth - before - after >= CREASE_MIN_VOXELS))
    return crease & grey & (depth * voxel_mm >= CREASE_MIN_DEPTH_MM)


def thin_cortex(gm: np.ndarray, csf: np.ndarray, wm: np.ndarray, region: np.ndarray,
                thinning_mm: float, voxel_mm: float) -> None:
    """Move ``thinning_mm`` of grey matter to CSF at the pial surface, in place.

    Voxels of ``region`` where GM meets outer CSF (6-neighbourhood) lose a
    GM fraction of ``thinning_mm / voxel_mm`` (bounded by what they hold).
    In the template most sulci hold no visible CSF: the two banks' GM touch
    and their pial surfaces coincide on the medial surface between them
    (:func:`sulcal_crease`); there both banks thin, so the medial voxels lose
    twice the fraction (a CSF gap opens). Every cortical column of the region
    then loses about ``thinning_mm`` (measured on the noise-free template with
    the Laplace thickness; tests/unit/test_simulate_anatomy.py); thinning only
    the exposed surface moved 29 % of M1's columns.
    """
    if thinning_mm <= 0:
        return
    tissue = (gm + wm) > 0.5
    pial = (gm > 0.3) & ndimage.binary_dilation(~tissue) & region
    grey = tissue & (gm > wm)
    medial = sulcal_crease(grey, tissue & ~grey, voxel_mm) & region & ~pial
    take = (np.minimum(gm, thinning_mm / voxel_mm) * pial
            + np.minimum(gm, 2 * thinning_mm / voxel_mm) * medial)
    gm -= take
    csf += take


@dataclass
class StructuralSession:
    """Images and truth of one structural session (scanner space).

    ``regions`` are each atlas region on its own (probability > 25 %; CST and
    M1 overlap where the tract reaches the cortex); ``atlas_dseg`` labels them
    by the pipeline's rule (:func:`pipeline.templates.atlas_region_labels`:
    the more probable region wins), the truth of the anatomy stream's
    ``desc-atlas_dseg``.
    """

    t1w: nib.Nifti1Image
    flair: nib.Nifti1Image
    lesion: nib.Nifti1Image
    dseg: nib.Nifti1Image
    brain_mask: nib.Nifti1Image
    regions: dict
    atlas_dseg: nib.Nifti1Image
    truth: dict


DSEG_LABELS = {0: "background", 1: "CSF", 2: "GM", 3: "WM", 4: "lesion"}


def _bias_field(rng, shape, strength: float) -> np.ndarray:
    coarse = rng.normal(size=(4, 4, 4))
    field_ = ndimage.zoom(coarse, np.asarray(shape) / 4.0, order=3, mode="nearest")[
        : shape[0], : shape[1], : shape[2]
    ]
    field_ = field_ / max(float(np.abs(field_).max()), 1e-9)
    return np.exp(strength * field_).astype(np.float32)


def _rician(rng, signal: np.ndarray, sigma: float) -> np.ndarray:
    real = signal + rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    imag = rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    return np.sqrt(real * real + imag * imag)


def simulate_structural(
    *,
    rng: np.random.Generator,
    layers: TemplateLayers,
    session_map: SessionMap,
    lesion_plan: LesionPlan | None,
    lesion_stage: str | None,
    thinning_mm: float = 0.0,
    thinning_side: str = "left",
    voxel_mm: float = 1.0,
    fov_mm=DEFAULT_FOV_MM,
    bias_strength: float = 0.15,
    snr_t1w: float = 40.0,
    snr_flair: float = 25.0,
    contrast: TissueContrast = TEMPLATE_CONTRAST,
) -> StructuralSession:
    """T1w and FLAIR of one session with their truth.

    Parameters
    ----------
    lesion_plan : LesionPlan or None
        None makes a lesion-free session.
    lesion_stage : {"subacute", "chronic"} or None
    thinning_mm : float
        Cortical thinning (mm) planted in the primary motor cortex (Juelich
        BA4a + BA4p) of ``thinning_side``; the 6-month session gets it.
    voxel_mm : float
        Isotropic voxel size (1 mm by default; 2 mm or more for fast tests).
    snr_t1w, snr_flair : float
        White-matter intensity over the Rician noise sigma.
    contrast : TissueContrast
        The subject's T1w grey-matter and CSF contrast (:mod:`pipeline.simulate.contrast`;
        the default paints every voxel of a class alike).

    Returns
    -------
    StructuralSession
        ``truth`` holds volumes in mL (native space), the lesion side, the
        lesion centroid in template mm and the planted thinning.
    """
    shape, affine = grid_for_fov(fov_mm, voxel_mm)
    m1 = layers.m1[thinning_side]
    gm_t, wm_t, csf_t = layers.gm.copy(), layers.wm, layers.csf.copy()
    if thinning_mm > 0:
        thin_cortex(gm_t, csf_t, wm_t, m1 > ATLAS_THRESHOLD, thinning_mm, voxel_mm=1.0)
    pulled = pull(
        [gm_t, wm_t, csf_t, layers.skull, layers.scalp,
         layers.cst["left"], layers.cst["right"], layers.m1["left"], layers.m1["right"]],
        layers.affine, session_map, shape, affine, order=1,
    )
    gm, wm, csf, skull, scalp, cst_l, cst_r, m1_l, m1_r = pulled
    gm_gain = (np.ones(shape, np.float32) if contrast.uniform else
               pull([gm_multiplier(contrast, layers)], layers.affine, session_map, shape,
                    affine, order=1)[0])
    voxel_ml = voxel_mm**3 / 1000.0

    lesion = np.zeros(shape, dtype=bool)
    core = np.zeros(shape, dtype=bool)
    truth = {"lesion_volume_ml": 0.0, "lesion_side": "none", "lesion_centroid_mni_x": np.nan,
             "lesion_centroid_mni_y": np.nan, "lesion_centroid_mni_z": np.nan}
    if lesion_plan is not None and lesion_stage is not None:
        xyz = np.concatenate([
            session_map(_slab_coords(shape, affine, z0, z1))
            for z0, z1 in _slabs(shape[2], 16)
        ])
        values = lesion_field(lesion_plan, xyz).reshape(shape, order="F")
        # an arterial territory does not cross the midline: the infarct stays in its
        # hemisphere (template x beyond the falx, MIDLINE_MARGIN_MM); without this a
        # large deep lesion near the midline spread 40 % into the other hemisphere
        # while its truth said one side
        template_x = xyz[:, 0].reshape(shape, order="F")
        own_side = (template_x < -MIDLINE_MARGIN_MM if lesion_plan.side == "left"
                    else template_x > MIDLINE_MARGIN_MM)
        tissue = ((gm + wm) > 0.5) & own_side
        target = lesion_plan.volume_ml
        if lesion_stage == "chronic":
            target *= lesion_plan.chronic_fraction
        lesion = largest_component(_top_voxels(values, tissue, int(round(target / voxel_ml))))
        if lesion_stage == "chronic":
            # cavitated core: the inner 40 % of the chronic lesion, deepest from its edge
            # (the gliotic rim surrounds the cavity on every side, also where the
            # lesion meets the midline; the field breaks ties)
            depth = ndimage.distance_transform_edt(lesion) + 0.01 * values
            core = lesion & _top_voxels(depth, lesion, int(0.4 * lesion.sum()))
        points = xyz.reshape(*shape, 3, order="F")[lesion]
        centroid = points.mean(axis=0)
        truth.update(
            lesion_volume_ml=float(lesion.sum() * voxel_ml), lesion_side=lesion_plan.side,
            lesion_centroid_mni_x=float(centroid[0]), lesion_centroid_mni_y=float(centroid[1]),
            lesion_centroid_mni_z=float(centroid[2]),
        )

    frac = {"gm": gm, "wm": wm, "csf": csf, "skull": skull, "scalp": scalp}
    rim = lesion & ~core
    healthy = 1.0 - lesion
    t1 = np.zeros(shape, np.float32)
    flair = np.zeros(shape, np.float32)
    t1w_intensity = {**T1W_INTENSITY, "gm": contrast.gm * gm_gain, "csf": contrast.csf}
    for name, f in frac.items():
        t1 += f * t1w_intensity[name] * (healthy if name in ("gm", "wm", "csf") else 1)
        flair += f * FLAIR_INTENSITY[name] * (healthy if name in ("gm", "wm", "csf") else 1)
    brain_frac = np.clip(gm + wm + csf, 0, 1)
    if lesion.any():
        if lesion_stage == "subacute":
            t1 += lesion * brain_frac * T1W_INTENSITY["lesion_subacute"]
            flair += lesion * brain_frac * FLAIR_INTENSITY["lesion_subacute"]
        else:
            for part, key in ((core, "lesion_core"), (rim, "lesion_rim")):
                t1 += part * brain_frac * T1W_INTENSITY[key]
                flair += part * brain_frac * FLAIR_INTENSITY[key]

    images = {}
    for name, img, snr in (("t1w", t1, snr_t1w), ("flair", flair, snr_flair)):
        blurred = ndimage.gaussian_filter(img, 0.5)
        biased = blurred * _bias_field(rng, shape, bias_strength)
        scale = 1000.0 / (T1W_INTENSITY["wm"] if name == "t1w" else FLAIR_INTENSITY["wm"])
        noisy = _rician(rng, biased * scale, sigma=1000.0 / snr)
        images[name] = nib.Nifti1Image(np.clip(np.round(noisy), 0, 32767).astype(np.int16), affine)

    intracranial = (gm + wm + csf) > 0.5
    dseg = np.zeros(shape, np.uint8)
    stack = np.stack([csf, gm, wm])
    dseg[intracranial] = 1 + np.argmax(stack[:, intracranial], axis=0)
    dseg[lesion] = 4
    probabilities = {"cst_left": cst_l, "cst_right": cst_r, "m1_left": m1_l, "m1_right": m1_r}
    regions = {name: p > ATLAS_THRESHOLD for name, p in probabilities.items()}
    atlas_dseg = templates.atlas_region_labels(probabilities)
    healthy_frac = 1.0 - lesion
    truth.update(
        voxel_mm=voxel_mm,
        intracranial_volume_ml=float((gm + wm + csf).sum() * voxel_ml),
        brain_mask_volume_ml=float(intracranial.sum() * voxel_ml),
        gm_volume_ml=float((gm * healthy_frac).sum() * voxel_ml),
        wm_volume_ml=float((wm * healthy_frac).sum() * voxel_ml),
        csf_volume_ml=float((csf * healthy_frac).sum() * voxel_ml),
        brain_volume_ml=float(((gm + wm) * healthy_frac).sum() * voxel_ml
                              + lesion.sum() * voxel_ml),
        thinning_m1_mm=float(thinning_mm) if thinning_mm > 0 else 0.0,
        thinning_side=thinning_side if thinning_mm > 0 else "none",
        subject_linear_scale=session_map.warp.linear_scale,
    )
    def as_img(arr, dtype=np.uint8):
        return nib.Nifti1Image(arr.astype(dtype), affine)

    return StructuralSession(
        t1w=images["t1w"], flair=images["flair"], lesion=as_img(lesion),
        dseg=as_img(dseg), brain_mask=as_img(intracranial),
        regions={k: as_img(v) for k, v in regions.items()}, atlas_dseg=as_img(atlas_dseg),
        truth=truth,
    )


def _slabs(n: int, size: int):
    return [(z0, min(z0 + size, n)) for z0 in range(0, n, size)]


def _slab_coords(shape, affine, z0, z1) -> np.ndarray:
    """World coordinates of voxels z0..z1, in Fortran (x fastest) order per slab."""
    i, j, k = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), np.arange(z0, z1),
                          indexing="ij")
    ijk = np.stack([i.ravel(order="F"), j.ravel(order="F"), k.ravel(order="F")], axis=1)
    return apply_affine(affine, ijk.astype(float))
