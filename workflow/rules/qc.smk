# QC reports: per-session HTML pages and the group dashboard. (Being built: issue 8.)
