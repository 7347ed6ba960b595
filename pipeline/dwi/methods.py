"""Methods text of the DWI QC reportlets, from the configuration that ran."""

from __future__ import annotations

TENSOR_FIT_METHODS = {
    "WLS": "Diffusion tensor fit by weighted least squares (dipy).",
    "OLS": "Diffusion tensor fit by ordinary least squares (dipy).",
    "RESTORE": "Diffusion tensor fit by RESTORE, robust to outlier signals (Chang et al. 2005; dipy).",
}


def preproc_methods(dwi: dict) -> str:
    """Methods text of the preprocessing reportlet: the steps ``dwi`` (the config's
    ``dwi`` section) runs, so a QC page never names a step that was skipped."""
    steps = {"mppca": ["MP-PCA denoising (Veraart et al. 2016; dipy)"],
             "patch2self": ["Patch2Self denoising (Fadnavis et al. 2020; dipy)"],
             "none": []}[dwi["denoise"]]
    if dwi["denoise"] == "mppca" and dwi["rician_correction"]:
        steps.append("Rician noise floor subtracted with the MP-PCA noise map")
    if dwi["gibbs"]:
        steps.append("Gibbs-ringing removal (Kellner et al. 2016)")
    target = ("every diffusion-weighted volume registered by least squares to its "
              "leave-one-out prediction from the other volumes (log-linear tensor per shell, "
              "closed-form hat-matrix prediction; "
              f"{dwi.get('motion_rounds', 2)} rounds), as FSL eddy "
              "(Andersson & Sotiropoulos 2016) and QSIPrep SHORELine (Cieslak et al. 2021) "
              "do, not to b=0, starting from no motion; b=0 volumes rigid to the first; each "
              "shell's mean anchored rigidly to the level below (b=0 or the next lower "
              "shell) with ANTs (Mattes mutual information) when the b-value step is at most "
              f"{dwi.get('anchor_max_b_step', 2000):g} s/mm2, else left in its mean pose")
    second_level = ("; eddy-current terms modelled as linear in the gradient (FSL eddy's "
                    "second-level linear model), with the part the prediction absorbed "
                    "undone")
    motion = {
        "eddy": f"{target}; rigid head motion plus eddy currents modelled as a displacement "
                "along the phase-encoding axis linear in position (Jezzard et al. 1998), "
                f"Jacobian-modulated{second_level}; b-vectors rotated by the rigid part "
                "(Leemans & Jones 2009)",
        "rigid": f"{target}; rigid; b-vectors rotated (Leemans & Jones 2009)",
        "none": "no motion correction",
    }[dwi["motion_correction"]]
    steps.append(motion)
    if dwi.get("susceptibility_correction", True):
        steps.append("with a reverse phase-encoding b=0, susceptibility displacement along "
                     "the phase-encoding axis estimated from the b=0 pair (cubic B-spline "
                     "field, Jacobian intensity modulation, bending-energy penalty, rigid "
                     "move between the pair: the model of TOPUP, Andersson et al. 2003; "
                     "L-BFGS, coarse to fine) and applied in the one resampling of every "
                     "volume; without one the series stays distorted")
    if dwi.get("replace_outlier_slices", True):
        steps.append("slices with signal dropout (tensor residuals) replaced by the tensor "
                     "prediction and the tensor refitted on every volume")
    text = "; ".join(steps)
    return text[0].upper() + text[1:] + "."


def tensor_methods(dwi: dict) -> str:
    """Methods text of the tensor reportlets: the estimator and the shells it used."""
    return (f"{TENSOR_FIT_METHODS[dwi['tensor_fit']]} Fitted on b=0 and the shells at or "
            f"below {dwi['dti_max_b']:g} s/mm2 (dwi.dti_max_b); data with only higher shells "
            "are fitted on them with a warning in the figure title and the metrics.")
