"""The stats report's count of lesion-mask sources per visit (pipeline.stats.lesion_sources)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd


def test_stats_counts_lesion_sources_per_visit():
    from pipeline.stats.lesion_sources import lesion_source_counts

    features = pd.DataFrame({
        "participant_id": ["sub-1", "sub-1", "sub-2", "sub-2", "sub-3", "sub-3"],
        "session": ["baseline", "m06", "baseline", "m06", "baseline", "m06"],
        "lesion_source": ["automatic", "reviewed", "reviewed", "manual", "none", np.nan]})
    counts = lesion_source_counts(features, ["baseline", "m06"])
    assert counts["columns"] == ["automatic", "reviewed", "manual", "none", "n/a"]
    assert [r["visit"] for r in counts["rows"]] == ["baseline", "m06"]
    assert counts["rows"][0]["counts"] == [1, 1, 0, 1, 0]
    assert counts["rows"][1]["counts"] == [0, 1, 1, 0, 1]
    assert counts["total"]["counts"] == [1, 2, 1, 1, 1] and counts["total"]["total"] == 6
    clean = lesion_source_counts(features.iloc[:4], ["baseline", "m06"])
    assert clean["columns"] == ["automatic", "reviewed", "manual", "none"]   # no n/a column
    assert lesion_source_counts(features.drop(columns="lesion_source")) is None


def test_stats_report_shows_the_lesion_source_table():
    from jinja2 import Environment

    from pipeline.stats.lesion_sources import lesion_source_counts
    from pipeline.stats.report_template import TEMPLATE

    start = TEMPLATE.index("{% if lesion_sources %}")
    block = TEMPLATE[start:TEMPLATE.index("{% endif %}", TEMPLATE.index("</table>", start)) + 11]
    features = pd.DataFrame({"session": ["baseline", "m06", "m06"],
                             "lesion_source": ["automatic", "reviewed", "reviewed"]})
    html = Environment(autoescape=True).from_string(block).render(
        lesion_sources=lesion_source_counts(features, ["baseline", "m06"]))
    cells = [re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row)
             for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)]
    assert cells[0] == ["visit", "automatic", "reviewed", "manual", "none", "total"]
    assert cells[2] == ["m06", "0", "2", "0", "0", "2"]
    assert cells[3] == ["all visits", "1", "2", "0", "0", "3"]
