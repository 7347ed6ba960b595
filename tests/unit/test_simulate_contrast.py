"""Subject-specific T1w contrast of the structural phantom (pipeline.simulate.contrast)."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.simulate.contrast import TEMPLATE_CONTRAST, draw_contrast, gm_multiplier


def _layers(n=64):
    """A ball of brain (radius 28 voxels, 2 mm) with an 'M1' patch near its surface."""
    grid = np.indices((n, n, n)).astype(float) - n / 2
    r = np.sqrt((grid**2).sum(0))
    gm = ((r < 28) & (r > 24)).astype(np.float32)
    wm = (r <= 24).astype(np.float32)
    m1 = np.zeros_like(gm)
    m1[(r < 28) & (r > 22) & (grid[2] > 20) & (np.abs(grid[0]) < 6)] = 1.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    return SimpleNamespace(shape=gm.shape, affine=affine, gm=gm, wm=wm,
                           m1={"left": m1, "right": np.zeros_like(m1)}), r


def test_uniform_contrast_is_one_everywhere():
    layers, _ = _layers()
    assert TEMPLATE_CONTRAST.uniform
    np.testing.assert_array_equal(gm_multiplier(TEMPLATE_CONTRAST, layers), 1.0)


def test_drawn_contrast_is_per_subject_and_reproducible():
    a, b = draw_contrast(np.random.default_rng(1)), draw_contrast(np.random.default_rng(2))
    assert a == draw_contrast(np.random.default_rng(1))
    assert a.gm != b.gm and 0.56 <= a.gm <= 0.68 and 0.12 <= a.csf <= 0.25
    layers, _ = _layers()
    np.testing.assert_array_equal(gm_multiplier(a, layers), gm_multiplier(a, layers))
    assert not np.array_equal(gm_multiplier(a, layers), gm_multiplier(b, layers))


def test_multiplier_has_deep_grey_and_m1_rise_and_the_stated_spread():
    layers, r = _layers()
    contrast = draw_contrast(np.random.default_rng(4))
    gain = gm_multiplier(contrast, layers)
    cortex = (layers.gm > 0) & (layers.m1["left"] == 0)
    deep = r < 4  # 48-56 mm below the surface
    assert gain[deep].mean() - gain[cortex].mean() == pytest.approx(contrast.deep_gm_rise, abs=0.03)
    m1 = (layers.m1["left"] > 0) & (layers.gm > 0)
    rise = gain - gm_multiplier(replace(contrast, m1_rise=0.0), layers)
    assert rise[m1].mean() > 0.5 * contrast.m1_rise and np.abs(rise[deep]).max() < 1e-6
    # regional + texture spread over the cortex (neither rise there)
    expected = np.hypot(contrast.regional_sd, contrast.texture_sd)
    assert gain[cortex].std() == pytest.approx(expected, rel=0.35)
