"""Cortical thickness of the real MNI152 2009a T1 (nilearn) with the stream's
configured thickness settings must fall in the published adult range."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.xfail(strict=False, reason="issue 3 not met: 3.7-3.8 mm on the central surface "
                   "(Laplace, 0.5 mm grid, 3 mm sulcal jump; measured 2026-11-22 by "
                   "benchmarks/anat_mni_thickness.py). The average template's folds are "
                   "averaged away (pial surface 1139 cm2 < white surface 1615 cm2); the "
                   "template's own tissue maps read 3.1 mm. Opening more hidden sulci "
                   "(jump 1.5 mm) reads 2.5-2.7 mm but under-reads a 4 mm shell and "
                   "recovers 0.13 of a planted 0.3 mm thinning (criterion: within 0.1)")
def test_mni152_mean_cortical_thickness_in_adult_range(tmp_path):
    import ants

    from pipeline import templates
    from pipeline.anat.register import atlas_regions_t1w, label_atlas_t1w
    from pipeline.anat.segment import segment_tissues
    from pipeline.anat.thickness import cortical_thickness, regional_thickness

    cfg = yaml.safe_load((REPO / "configs" / "config.yaml").read_text())["anat"]
    t1 = templates.nilearn_tissue_templates()["t1"]
    identity = tmp_path / "identity.mat"
    ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform", dimension=3),
                         str(identity))
    seg = segment_tissues(t1, str(identity), prior_weight=cfg["prior_weight"],
                          mrf_weight=cfg["mrf_weight"])
    thick, weight = cortical_thickness(seg.dseg, seg.probseg, method=cfg["thickness_method"],
                                       grid_mm=cfg["thickness_grid_mm"],
                                       sulcal_jump_mm=cfg["thickness_sulcal_jump_mm"],
                                       with_surface_weight=True)
    metrics, table = regional_thickness(thick, seg.dseg, atlas_regions_t1w(t1, str(identity)),
                                        label_atlas_t1w("desikan_killiany", t1, str(identity)),
                                        lesion_side=None, weight=weight)
    # published adult mean cortical thickness: about 2.3-2.8 mm (Fischl & Dale 2000;
    # Tustison et al. 2014, ANTs vs FreeSurfer)
    assert 2.3 <= metrics["thickness_mean_mm"] <= 2.8, metrics
    assert len(table) >= 60
    assert np.isnan(metrics["thickness_m1_ipsilesional_mm"])
