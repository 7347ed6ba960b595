"""QC reports: per-session HTML pages, the group dashboard and reviewer ratings.

Pages are self-contained (figures inlined as base64 PNG, no network) and
blinded: nothing here reads the allocation key. Ratings given in the browser
are exported as ``qc/ratings.tsv`` (:mod:`pipeline.report.ratings`) and read
back into the feature table.
"""
