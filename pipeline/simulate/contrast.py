"""Subject-specific T1w grey-matter contrast for the structural phantom (issue 21).

The first phantom painted every subject with the same class means and a grey
matter of one intensity, from the same MNI 2009a maps the segmentation takes as
priors: a segmentation whose grey/white boundary is biased on real T1w (wider,
heterogeneous grey matter) was exact on it. Real T1w grey matter differs from
subject to subject and scanner to scanner (GM/WM ratio about 0.55-0.70), varies
within the cortex (heavily myelinated primary motor and sensory cortex is
brighter, closer to white matter; Glasser & Van Essen 2011) and deep grey matter
is brighter still (myelinated thalamus and basal ganglia). This module draws,
per subject:

* class means: GM/WM and CSF/WM ratios;
* a grey-matter intensity multiplier on the template grid: a smooth regional
  field (wavelengths 40-120 mm), a fine texture (about 2 mm, the class width),
  a rise with depth in deep grey matter (myelination gradient) and a brighter
  primary motor cortex (Juelich BA4).

The multiplier is drawn on the template grid, so it belongs to the anatomy and is
the same at every visit of a subject. Nothing here uses the pipeline's methods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline.templates import ATLAS_THRESHOLD


@dataclass
class TissueContrast:
    """One subject's T1w contrast (intensities relative to white matter = 1).

    Attributes
    ----------
    gm, csf : float
        Class means.
    regional_sd, texture_sd : float
        SD of the smooth regional and the fine grey-matter multipliers.
    deep_gm_rise : float
        Relative rise of grey-matter intensity in deep grey matter (deepest point).
    m1_rise : float
        Relative rise of grey-matter intensity in M1.
    seed : int
        Seed of the fields.
    """

    gm: float = 0.62
    csf: float = 0.18
    regional_sd: float = 0.0
    texture_sd: float = 0.0
    deep_gm_rise: float = 0.0
    m1_rise: float = 0.0
    seed: int = 0

    @property
    def uniform(self) -> bool:
        return not (self.regional_sd or self.texture_sd or self.deep_gm_rise or self.m1_rise)


TEMPLATE_CONTRAST = TissueContrast()
"""The original phantom: one GM and CSF intensity everywhere, for every subject."""


def draw_contrast(rng: np.random.Generator) -> TissueContrast:
    """A subject's contrast: GM/WM 0.56-0.68, CSF/WM 0.12-0.25, regional SD 3 %,
    texture SD 4 %, deep grey matter up to +20 %, M1 +6 %."""
    return TissueContrast(gm=float(rng.uniform(0.56, 0.68)), csf=float(rng.uniform(0.12, 0.25)),
                          regional_sd=0.03, texture_sd=0.04, deep_gm_rise=0.20, m1_rise=0.06,
                          seed=int(rng.integers(2**31)))


def _unit_sd(field: np.ndarray, where: np.ndarray) -> np.ndarray:
    sd = float(field[where].std()) if where.any() else 0.0
    return field / sd if sd > 0 else field


def gm_multiplier(contrast: TissueContrast, layers) -> np.ndarray:
    """Grey-matter intensity multiplier on the template grid (1 where uniform)."""
    shape = layers.shape
    if contrast.uniform:
        return np.ones(shape, np.float32)
    rng = np.random.default_rng(contrast.seed)
    voxel = float(np.mean(np.abs(np.diag(layers.affine)[:3])))
    brain = (layers.gm + layers.wm) > 0.5
    out = np.ones(shape, np.float32)
    if contrast.regional_sd:
        # smooth field: white noise on a coarse grid, smoothed, upsampled
        coarse = tuple(max(2, int(np.ceil(n * voxel / 8.0))) for n in shape)
        field = ndimage.gaussian_filter(rng.standard_normal(coarse), 15.0 / 8.0)
        field = ndimage.zoom(field, [(n + 1) / c for n, c in zip(shape, coarse, strict=True)],
                             order=1)[
            :shape[0], :shape[1], :shape[2]]
        out += contrast.regional_sd * _unit_sd(field, brain).astype(np.float32)
    if contrast.texture_sd:
        field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32),
                                        2.0 / voxel / 2.355)
        out += contrast.texture_sd * _unit_sd(field, brain)
    if contrast.deep_gm_rise:
        # depth below the brain surface: deep grey matter (> 20 mm) rises to its maximum at 40 mm
        depth = ndimage.distance_transform_edt(brain) * voxel
        out += contrast.deep_gm_rise * np.clip((depth - 20.0) / 20.0, 0, 1).astype(np.float32)
    if contrast.m1_rise:
        m1 = np.maximum(layers.m1["left"], layers.m1["right"]) > ATLAS_THRESHOLD
        out += contrast.m1_rise * ndimage.gaussian_filter(m1.astype(np.float32), 2.0 / voxel)
    return out
