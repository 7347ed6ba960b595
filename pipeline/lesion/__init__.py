"""Lesion stream: FLAIR to T1w, automatic or manual lesion mask, volume, side, CST load."""
