"""Anatomy stream: lesion-masked SyN against the phantom's known warp, and the
same result for an oblique T1w. ANTs registrations: marked slow."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big_lesion_session(layers):
    """One session (2.5 mm) with a large subacute lesion and its scanner->template map."""
    from pipeline.simulate import anatomy
    from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix

    rng = np.random.default_rng(5)
    warp = random_subject_warp(rng)
    plan = anatomy.plan_lesion(rng, layers, side="left", volume_ml=120.0)
    smap = SessionMap(warp, rigid_matrix([2.0, -3.0, 1.0], [3.0, -2.0, 4.0]))
    ses = anatomy.simulate_structural(rng=rng, layers=layers, session_map=smap, lesion_plan=plan,
                                      lesion_stage="subacute", voxel_mm=2.5)
    return ses, smap


def _template_coordinates_in_t1w(reference, mni_to_t1w):
    """World (mm) MNI coordinates each T1w voxel is mapped to by ``mni_to_t1w``."""
    from pipeline import templates
    from pipeline.anat.register import to_t1w

    tpl = templates.fsl_mni152_brain()
    ijk = np.indices(tpl.shape).reshape(3, -1).T
    xyz = (ijk @ tpl.affine[:3, :3].T + tpl.affine[:3, 3]).reshape(*tpl.shape, 3)
    return np.stack([to_t1w(nib.Nifti1Image(xyz[..., k].astype(np.float32), tpl.affine), reference,
                            mni_to_t1w).get_fdata() for k in range(3)], axis=-1)


def test_lesion_masking_reduces_registration_error_near_the_lesion(big_lesion_session, tmp_path):
    from pipeline.anat.brainmask import template_brain_mask
    from pipeline.anat.register import dilate_mm, syn_to_template

    ses, smap = big_lesion_session
    pre = template_brain_mask(ses.t1w, registration_voxel_mm=2.5)
    lesion = np.asarray(ses.lesion.dataobj) > 0
    near = dilate_mm(lesion, 10.0, 2.5)
    ijk = np.argwhere(near)
    xyz = ijk @ ses.t1w.affine[:3, :3].T + ses.t1w.affine[:3, 3]
    truth = smap(xyz)  # template (MNI) mm of each voxel near the lesion
    errors = {}
    for name, masked, filled in (("masked", True, False), ("unmasked", False, False),
                                 ("masked+filled", True, True)):
        work = tmp_path / name
        work.mkdir()
        syn = syn_to_template(pre.t1w_preproc, pre.brain_mask, workdir=work, lesion=ses.lesion,
                              registration_voxel_mm=2.5, use_lesion_mask=masked,
                              fill_lesion=filled)
        estimate = _template_coordinates_in_t1w(pre.t1w_preproc, syn.mni_to_t1w)[near]
        errors[name] = float(np.linalg.norm(estimate - truth, axis=1).mean())
        print(f"{name}: mean error near the lesion {errors[name]:.2f} mm")
    # all include the few-mm FSL-vs-2009a template difference; masking must help
    assert errors["masked"] < errors["unmasked"] - 0.1, errors
    assert errors["masked"] < 5.0, errors
    # the mirrored hemisphere inside the lesion helps further (measured
    # 2026-11-22: unmasked 4.08, masked 3.49, masked+filled 2.95 mm)
    assert errors["masked+filled"] < errors["masked"] - 0.2, errors


def test_oblique_t1w_gives_the_same_brain_mask(big_lesion_session, tmp_path):
    """A T1w whose header is rotated (oblique) is the same head rotated in
    the world: the voxel-wise brain mask must be the same as for RAS."""
    from pipeline.anat.brainmask import template_brain_mask
    from pipeline.anat.inputs import load_t1w
    from pipeline.simulate.space import rigid_matrix
    from tests.conftest import dice

    ses, _ = big_lesion_session
    oblique = nib.Nifti1Image(np.asarray(ses.t1w.dataobj), rigid_matrix([0, 0, 0], [12, -8, 5])
                              @ ses.t1w.affine)
    nib.save(oblique, tmp_path / "oblique.nii.gz")
    nib.save(ses.t1w, tmp_path / "ras.nii.gz")
    masks = [np.asarray(template_brain_mask(load_t1w(tmp_path / name),
                                            registration_voxel_mm=2.5).brain_mask.dataobj)
             for name in ("ras.nii.gz", "oblique.nii.gz")]
    assert dice(*masks) > 0.97
    assert dice(masks[1], ses.brain_mask.dataobj) > 0.93


def test_brain_mask_does_not_depend_on_the_metric_seed(big_lesion_session):
    """Next to a large lesion the affine must not collapse for some seed of the
    metric (with a 25 % random sample it did on 1 mm 120 mL phantoms: brain
    masks of 100-500 mL for two of three seeds)."""
    from pipeline.anat.brainmask import template_brain_mask
    from tests.conftest import dice

    ses, _ = big_lesion_session
    for seed in (1, 2, 3):
        result = template_brain_mask(ses.t1w, registration_voxel_mm=2.5, lesion=ses.lesion,
                                     seed=seed)
        assert dice(result.brain_mask.dataobj, ses.brain_mask.dataobj) > 0.93, seed
