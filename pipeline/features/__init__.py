"""The feature table: one row per subject x session, with a data dictionary."""
