"""Where each session's lesion mask came from, counted per visit (stats report table).

``lesion_source`` in ``features.tsv`` is ``automatic`` (unsupervised segmentation),
``reviewed`` (edited and saved by a QC reviewer on the review page), ``manual`` (a
``label-lesion_roi`` mask) or ``none`` (no FLAIR and no manual mask). Sessions where
the lesion step did not run or failed have no value (``n/a``). Every lesion feature
of a session (volume, side, CST load) rests on its mask, so the report says how many
came from each source. Counts only: nothing here is by arm.
"""

from __future__ import annotations

import pandas as pd

SOURCES = ("automatic", "reviewed", "manual", "none")
MISSING = "n/a"


def lesion_source_counts(features: pd.DataFrame | None, visits=()) -> dict | None:
    """Sessions per visit by lesion source.

    Parameters
    ----------
    features : DataFrame or None
        ``features.tsv`` (``session`` and ``lesion_source`` columns).
    visits : sequence of str
        Visit order; visits of the table not listed come after, in table order.

    Returns
    -------
    dict or None
        ``columns`` (the sources, plus ``n/a`` when a session has no value), ``rows``
        (``visit``, ``counts`` in column order, ``total``) and ``total`` (a row over
        every visit); None without a feature table or a ``lesion_source`` column.
    """
    if features is None or "lesion_source" not in features.columns:
        return None
    source = features["lesion_source"].astype("string").str.strip().fillna(MISSING)
    source = source.where(source.isin(SOURCES), MISSING)
    session = features["session"].astype(str)
    order = [v for v in visits if v in set(session)]
    order += [v for v in dict.fromkeys(session) if v not in order]
    columns = list(SOURCES) + ([MISSING] if (source == MISSING).any() else [])
    table = pd.crosstab(session, source).reindex(index=order, columns=columns, fill_value=0)
    rows = [{"visit": visit, "counts": [int(n) for n in table.loc[visit]],
             "total": int(table.loc[visit].sum())} for visit in order]
    total = {"visit": "all visits", "counts": [int(n) for n in table.sum(axis=0)],
             "total": int(table.to_numpy().sum())}
    return {"columns": columns, "rows": rows, "total": total}
