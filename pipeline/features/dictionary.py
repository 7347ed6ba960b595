"""Data dictionary of every feature column (``features.json``).

Each stream declares its columns here: description, units, which direction
is better (``higher``, ``lower`` or ``n/a``), and the stream that makes it.
A column a stream writes but that is not declared is an error (tested).
"""

from __future__ import annotations

FEATURES: dict[str, dict] = {}


def declare(name: str, *, stream: str, description: str, units: str, better: str = "n/a",
            levels: dict | None = None) -> None:
    if better not in ("higher", "lower", "n/a"):
        raise ValueError(f"{name}: better must be higher/lower/n/a")
    FEATURES[name] = {"Description": description, "Units": units, "Better": better,
                      "Stream": stream, **({"Levels": levels} if levels else {})}


# --- identifiers and provenance -------------------------------------------------
IDENTIFIERS = ("participant_id", "session")
declare("participant_id", stream="inventory", description="BIDS participant label", units="n/a")
declare("session", stream="inventory", description="BIDS session label (visit)", units="n/a")
declare("pipeline_version", stream="provenance",
        description="version of resstore-pipeline that computed the row", units="n/a")
declare("config_hash", stream="provenance",
        description="first 12 hex digits of the SHA-256 of the validated configuration",
        units="n/a")

# --- anatomy (spine) -------------------------------------------------------------
declare("brain_mask_volume_ml", stream="anat", units="mL",
        description="volume of the template-based brain mask (MNI152 brain mask affinely "
                    "registered to the T1w), an estimate of intracranial brain volume")
declare("t1w_snr", stream="anat", units="ratio", better="higher",
        description="T1w SNR: mean in the brain mask over the background noise sigma "
                    "(Rayleigh-corrected background SD)")
declare("t1w_bias_range", stream="anat", units="ratio", better="lower",
        description="99th over 1st percentile of the N4 bias field in the brain "
                    "(1 = no intensity non-uniformity)")
declare("template_registration_mi", stream="anat", units="nats (negative Mattes MI)",
        better="lower", description="ANTs Mattes mutual information between the T1w and "
                                     "the registered template (more negative = better match)")

# --- FLAIR (spine) ---------------------------------------------------------------
declare("flair_snr", stream="flair", units="ratio", better="higher",
        description="FLAIR SNR: mean head signal over the background noise sigma")

# --- DWI (spine) -----------------------------------------------------------------
declare("dwi_n_volumes", stream="dwi", units="count", description="number of DWI volumes")
declare("dwi_n_b0", stream="dwi", units="count", description="number of b=0 volumes (b <= 50)")
declare("dwi_n_directions", stream="dwi", units="count",
        description="number of diffusion-weighted volumes")
declare("dwi_shells", stream="dwi", units="s/mm^2",
        description="non-zero b-value shells, comma separated")
declare("dwi_voxel_mm", stream="dwi", units="mm", description="mean DWI voxel size")
declare("dwi_b0_snr", stream="dwi", units="ratio", better="higher",
        description="SNR of the mean b=0 image (head mean over background noise sigma)")

# --- BOLD (spine) ----------------------------------------------------------------
declare("bold_n_volumes", stream="bold", units="count", description="number of BOLD volumes")
declare("bold_tr_s", stream="bold", units="s", description="repetition time")
declare("bold_voxel_mm", stream="bold", units="mm", description="mean BOLD voxel size")
declare("bold_tsnr_median", stream="bold", units="ratio", better="higher",
        description="median temporal SNR in the head mask, before motion correction")
declare("bold_dvars_mean_percent", stream="bold", units="% of mean signal", better="lower",
        description="mean DVARS (RMS volume-to-volume change) in the head mask")

STREAMS = ("anat", "flair", "dwi", "bold")
STREAM_MODALITY = {"anat": "T1w", "flair": "FLAIR", "dwi": "dwi", "bold": "bold"}
for _stream in STREAMS:
    declare(f"{_stream}_status", stream="provenance", units="n/a",
            description=f"'ok' if the {_stream} stream produced features for this session, "
                        "else the reason its columns are NA",
            levels=None)


def columns() -> list[str]:
    """Feature table columns in dictionary order."""
    return list(FEATURES)
