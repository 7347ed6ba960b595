"""The second-level eddy-current model undoes what a leave-one-out prediction absorbs
(pipeline.dwi.prediction.second_level), checked on exact synthetic maps."""

from __future__ import annotations

import numpy as np

from pipeline.dwi.prediction import grid_eddy, loo_operator, second_level
from pipeline.simulate.tensor import gradient_scheme


def _map(rotation, translation, eddy, pe_axis):
    out = np.eye(4)
    linear = rotation.copy()
    linear[pe_axis] += eddy @ rotation
    out[:3, :3], out[:3, 3] = linear, translation
    return out


def test_leak_of_a_half_sphere_scheme_is_undone_exactly():
    """Maps as a registration to the prediction finds them: the true eddy terms minus
    the leak ``L (true - previous)``. The model returns the true eddy terms (linear in
    the gradient) and the translation along phase encoding (offset from round 0 plus
    head motion), to rounding; the naive reading (the found terms) is off by a third or
    more."""
    pe = 1
    bvals, bvecs = gradient_scheme(n_b0=2, n_directions=20, bval=1000.0)
    bvecs = np.asarray(bvecs, float).T if np.shape(bvecs)[0] == 3 else np.asarray(bvecs, float)
    dw = np.flatnonzero(np.asarray(bvals) > 50)
    assert (bvecs[dw, 2] >= -1e-9).all()  # a half sphere, as scanners often acquire
    k = np.array([[0.03, -0.01, 0.0, 1.5],   # rows: g_x, g_y, g_z -> (e_x, e_y, e_z, shift)
                  [0.01, 0.03, 0.02, 1.5],
                  [0.0, 0.01, 0.03, -0.5]])
    rng = np.random.default_rng(0)
    motion = rng.normal(0.0, 0.3, len(bvals))
    truth = np.zeros((len(bvals), 4))
    truth[dw] = bvecs[dw] @ k
    truth[dw, 3] += motion[dw]
    loo = loo_operator(bvals, bvecs)
    previous_terms = np.zeros_like(truth)
    previous_terms[dw, 3] = truth[dw, 3]          # round 0: rigid, translation found
    found_terms = truth - loo @ (truth - previous_terms)
    identity = np.eye(3)
    found = {i: _map(identity, np.r_[0.0, found_terms[i, 3], 0.0], found_terms[i, :3], pe)
             for i in dw}
    previous = {i: _map(identity, np.r_[0.0, previous_terms[i, 3], 0.0], np.zeros(3), pe)
                for i in dw}
    naive_error = np.abs(found_terms[dw, 1] - truth[dw, 1]).max()
    # the offset per unit gradient as round 0 measures it (no prediction, no leak)
    out = second_level(found, previous, bvals, bvecs, bvecs, pe, k[:, 3])
    eddy = np.stack([grid_eddy(out[i], pe) for i in dw])
    shift = np.array([out[i][pe, 3] for i in dw])
    assert np.allclose(eddy, truth[dw, :3], atol=1e-9)
    assert np.allclose(shift, truth[dw, 3], atol=1e-9)
    assert naive_error > 0.3 * np.abs(truth[dw, 1]).max()
