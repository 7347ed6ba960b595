"""Image-quality metrics and QC figures (reportlets)."""
