"""QC reports: robust z, ratings TSV, feature-table QC columns, page content and escaping."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.errors import PipelineInputError
from pipeline.features import dictionary
from pipeline.report.group import robust_z
from pipeline.report.ratings import RATING_COLUMNS, merge_ratings, qc_columns, read_ratings
from tests.browser.sample import INJECTION, OUTLIER, build_reports, write_sample


def _ratings(path, rows):
    pd.DataFrame(rows, columns=RATING_COLUMNS).to_csv(path, sep="\t", index=False)
    return path


def test_robust_z_known_values():
    z = robust_z([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    # median 3, MAD 1 -> scale 1.4826
    np.testing.assert_allclose(z[:5], np.array([-2, -1, 0, 1, 97]) / 1.4826)
    assert np.isnan(z[5])
    assert np.isnan(robust_z([1.0, 2.0])).all()                  # group too small
    flat = robust_z([5.0, 5.0, 5.0, 7.0])                          # MAD 0
    assert flat[0] == 0 and np.isinf(flat[3])


def test_outliers_flagged_only_in_a_large_enough_group():
    import pandas as pd

    from pipeline.report.group import group_summary

    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(30.0, 1.0, 11), 60.0]               # one planted outlier
    big = group_summary(pd.DataFrame({"t1w_snr": values}), ["t1w_snr"], threshold=3.5)
    assert big["t1w_snr"]["outlier"].tolist() == [False] * 11 + [True]
    small = group_summary(pd.DataFrame({"t1w_snr": values[-4:]}), ["t1w_snr"], threshold=3.5)
    assert np.isfinite(small["t1w_snr"]["z"]).all() and not small["t1w_snr"]["outlier"].any()


def test_read_ratings_keeps_latest_and_checks_values(tmp_path):
    path = _ratings(tmp_path / "r.tsv", [
        ["sub-01", "baseline", "dwi", "fail", "A", "motion", "2025-03-01T10:00:00Z"],
        ["sub-01", "baseline", "dwi", "pass", "B", "ok on second look", "2025-03-02T09:00:00.000Z"],
        ["sub-01", "baseline", "T1w", "uncertain", "A", "", "2025-03-01T10:00:00+01:00"],
    ])
    table = read_ratings(path)
    assert len(table) == 2
    assert table.set_index("modality").loc["dwi", "rating"] == "pass"
    for bad, message in ((["sub-01", "baseline", "DWI", "pass", "", "", ""], "modality 'DWI'"),
                         (["sub-01", "baseline", "dwi", "ok", "", "", ""], "rating 'ok'"),
                         (["01", "baseline", "dwi", "pass", "", "", ""], "sub-<label>"),
                         (["sub-01", "ses-m06", "dwi", "pass", "", "", ""], "without ses-"),
                         (["sub-01", "m06", "dwi", "pass", "", "", "yesterday"], "ISO 8601")):
        with pytest.raises(PipelineInputError, match=message) as err:
            read_ratings(_ratings(tmp_path / "bad.tsv", [bad]))
        assert "bad.tsv: line 2" in str(err.value)
    (tmp_path / "cols.tsv").write_text("participant_id\tsession\tmodality\trating\nsub-01\tm06\tdwi\tpass\n")
    with pytest.raises(PipelineInputError, match="missing column"):
        read_ratings(tmp_path / "cols.tsv")


def test_merge_ratings_flags_failed_streams_keeps_values(tmp_path, caplog):
    features = pd.DataFrame({"participant_id": ["sub-01", "sub-01", "sub-02"],
                             "session": ["baseline", "m06", "baseline"],
                             "flair_snr": [10.0, 11.0, 12.0], "dwi_b0_snr": [5.0, 6.0, 7.0]})
    ratings = read_ratings(_ratings(tmp_path / "r.tsv", [
        ["sub-01", "m06", "FLAIR", "fail", "A", "", "2025-01-01T00:00:00Z"],
        ["sub-01", "m06", "dwi", "uncertain", "A", "", "2025-01-01T00:00:00Z"],
        ["sub-02", "baseline", "dwi", "pass", "A", "", "2025-01-01T00:00:00Z"],
        ["sub-09", "baseline", "dwi", "fail", "A", "", "2025-01-01T00:00:00Z"],
    ]))
    merged = merge_ratings(features, ratings).set_index(["participant_id", "session"])
    assert merged.loc[("sub-01", "m06"), "flair_rating"] == "fail"
    assert merged.loc[("sub-01", "m06"), "qc_status"] == "fail"
    assert merged.loc[("sub-01", "m06"), "qc_excluded_streams"] == "flair"   # lesion rated apart
    assert merged.loc[("sub-01", "m06"), "flair_snr"] == 11.0       # kept, only flagged
    assert merged.loc[("sub-02", "baseline"), "qc_status"] == "pass"
    assert merged.loc[("sub-02", "baseline"), "qc_excluded_streams"] == ""
    assert merged.loc[("sub-01", "baseline"), "qc_status"] == "unrated"
    assert merged.loc[("sub-01", "baseline"), "t1w_rating"] is None
    assert "sub-09" in caplog.text
    unrated = merge_ratings(features, None)
    assert (unrated.qc_status == "unrated").all()
    assert all(c in dictionary.FEATURES for c in qc_columns())


def test_collect_features_merges_ratings_and_documents_them(tmp_path):
    rows = []
    for pid in ("sub-01", "sub-02"):
        path = tmp_path / f"{pid}.json"
        path.write_text(json.dumps({"participant_id": pid, "session": "baseline",
                                    "dwi_b0_snr": 7.0, "dwi_status": "ok"}))
        rows.append(str(path))
    ratings = _ratings(tmp_path / "r.tsv", [["sub-02", "baseline", "dwi", "fail", "A", "",
                                             "2025-01-01T00:00:00Z"]])
    out = tmp_path / "features.tsv"
    assert main(["collect-features", "--rows", *rows, "--ratings", str(ratings),
                 "--out-tsv", str(out), "--out-json", str(tmp_path / "f.json")]) == 0
    table = pd.read_csv(out, sep="\t", keep_default_na=False).set_index("participant_id")
    assert table.loc["sub-02", "dwi_rating"] == "fail"
    assert table.loc["sub-02", "qc_excluded_streams"] == "dwi"
    assert table.loc["sub-01", "dwi_rating"] == "n/a"
    described = json.loads((tmp_path / "f.json").read_text())
    assert described["qc_status"]["Stream"] == "qc" and "dwi_rating" in described
    assert main(["collect-features", "--rows", *rows, "--ratings", str(tmp_path / "none.tsv"),
                 "--out-tsv", str(out), "--out-json", str(tmp_path / "f.json")]) == 2


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    sample = write_sample(root / "in", n_subjects=5, inject=True)
    ratings = _ratings(root / "ratings.tsv", [
        ["sub-002", "m06", "dwi", "fail", "Rev", "dropout <b>", "2025-01-01T00:00:00Z"]])
    return build_reports(sample, root / "reports", ratings=ratings), sample


def test_session_page_is_self_contained_escaped_and_compares_with_group(built):
    folder, sample = built
    html = (folder / "sub-001_ses-baseline.html").read_text()
    assert INJECTION not in html                                    # autoescaped
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert html.count("data:image/png;base64,") == 1
    assert "default-src &#39;none&#39;; img-src data:" in html            # CSP: no network
    assert "http://" not in html and "https://" not in html and " src=\"/" not in html
    assert "Template brain mask (red)" in html and "Methods." in html
    for modality in ("T1w", "FLAIR", "dwi", "bold"):
        assert f'id="modality-{modality}"' in html
    outlier = (folder / f"{OUTLIER[0]}_ses-{OUTLIER[1]}.html").read_text()
    assert outlier.count('class="outlier-row"') == 1 and "t1w_snr" in outlier
    no_bold = (folder / "sub-002_ses-m06.html").read_text()
    assert 'id="modality-bold"' not in no_bold                       # not acquired
    assert "Excluded from the models" in no_bold and "dropout &lt;b&gt;" in no_bold
    assert "Excluded from the models" not in html


def test_dashboard_links_every_page_and_flags_outliers(built):
    folder, sample = built
    html = (folder / "index.html").read_text()
    pages = sorted(p.name for p in folder.glob("sub-*.html"))
    assert len(pages) == 10
    for name in pages:
        assert f'href="{name}"' in html
    assert html.count('data-outliers="0"') < 10
    assert f'data-participant="{OUTLIER[0]}" data-session="{OUTLIER[1]}" data-outliers="1"' in html
    assert "[fail]" in html


def test_blinded_no_arm_in_pages(built):
    """Nothing in a page mentions an arm (the reports never read the allocation key)."""
    folder, _ = built
    for page in folder.glob("*.html"):
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page.read_text()).lower()
        for word in ("adsc", "placebo", "allocation.tsv", "treated"):
            assert word not in text, (page.name, word)


def test_shared_metrics_json_shown_once_and_lists_summarised(tmp_path):
    from pipeline.report.pages import read_table, session_context

    sample = write_sample(tmp_path / "in", n_subjects=3)
    items = sample["reportlets"][("sub-001", "baseline")]
    metrics = json.loads(open(items[0]["metrics"]).read())
    metrics["volume_displacement_mm"] = [0.1, 0.2, 0.3]
    open(items[0]["metrics"], "w").write(json.dumps(metrics))
    twice = [items[0], dict(items[0], step="other", title="Other step")]
    context = session_context("sub-001", "baseline", reportlets=twice,
                              features=read_table(sample["features"]),
                              inventory=read_table(sample["inventory"]), ratings=None,
                              threshold=3.5, study="x")
    first, second = context["sections"][0]["reportlets"]
    assert len(first["metrics"]) == 4 and second["metrics"] == []
    listed = {m["name"]: m["value"] for m in first["metrics"]}
    assert listed["volume_displacement_mm"] == "3 values"
