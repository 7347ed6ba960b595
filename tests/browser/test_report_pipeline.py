"""The reports inside the real workflow (Snakemake on the tiny phantom trial): blinded pages,
and the ratings round trip (ratings file in config -> features.tsv flags -> pages say so)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from pipeline.report.ratings import RATING_COLUMNS
from tests.workflow.conftest import snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tiny_trial, tmp_path_factory):
    """First run without ratings, then a rerun with qc.ratings set."""
    work = tmp_path_factory.mktemp("qc-run")
    out = work / "out"
    config = {"bids_dir": str(tiny_trial / "bids"), "output_dir": str(out)}
    snakemake(work / "snake", config, "--cores", "2")
    first = {p.name: p.read_text() for p in (out / "reports").glob("*.html")}
    first_features = _read(out / "features.tsv")
    anat_metrics = (out / "sub-001" / "ses-baseline" / "anat"
                    / "sub-001_ses-baseline_desc-brainmask_metrics.json")
    stamp = anat_metrics.stat().st_mtime_ns
    ratings = work / "qc" / "ratings.tsv"
    ratings.parent.mkdir()
    pd.DataFrame([
        ["sub-001", "baseline", "dwi", "fail", "Reviewer A", "signal dropout", "2025-05-01T10:00:00Z"],
        ["sub-002", "m06", "T1w", "pass", "Reviewer A", "", "2025-05-01T10:05:00Z"],
    ], columns=RATING_COLUMNS).to_csv(ratings, sep="\t", index=False)
    snakemake(work / "snake", {**config, "qc": {"ratings": str(ratings)}}, "--cores", "2")
    # analysis time: the same ratings, and the allocation key unblinds the stats rule only
    stats = {"allocation": str(tiny_trial / "allocation.tsv")}
    snakemake(work / "snake", {**config, "qc": {"ratings": str(ratings)}, "stats": stats}, "--cores", "2")
    return {"out": out, "first": first, "first_features": first_features,
            "anat_rerun": anat_metrics.stat().st_mtime_ns != stamp, "trial": tiny_trial}


def _read(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"])


def test_pages_built_blinded_and_small(runs):
    first = runs["first"]
    sessions = {f"sub-00{s}_ses-{v}" for s in (1, 2) for v in ("baseline", "m06")}
    assert set(first) == ({"index.html"} | {f"{s}.html" for s in sessions}
                          | {f"{s}_review.html" for s in sessions})      # + lesion review pages
    arms = set(_read(runs["trial"] / "allocation.tsv")["arm"].astype(str))
    assert arms                                                         # e.g. ADSC, placebo
    for name, html in first.items():
        assert len(html.encode()) <= 5 * 1024 * 1024, name
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # figures aside,
        text = re.sub(r'"[A-Za-z0-9+/=]{64,}"', '""', text)     # review pages' images and hashes,
        text = re.sub(r"<script>/\* NiiVue.*?</script>", "", text, flags=re.S).lower()  # viewer
        for arm in arms:
            assert arm.lower() not in text, (name, arm)
        if name != "index.html" and not name.endswith("_review.html"):
            assert "data:image/png;base64," in html                      # the brain-mask reportlet
            assert 'id="modality-T1w"' in html
    assert (runs["first_features"]["qc_status"] == "unrated").all()
    for arm in arms:
        assert arm not in (runs["out"] / "features.tsv").read_text()


def test_ratings_round_trip_flags_features_and_pages(runs):
    out = runs["out"]
    assert not runs["anat_rerun"]                          # only the table and the reports rerun
    features = _read(out / "features.tsv").set_index(["participant_id", "session"])
    row = features.loc[("sub-001", "baseline")]
    assert row["dwi_rating"] == "fail" and row["qc_status"] == "fail"
    assert row["qc_excluded_streams"] == "dwi"
    assert row["dwi_b0_snr"] == runs["first_features"].set_index(
        ["participant_id", "session"]).loc[("sub-001", "baseline"), "dwi_b0_snr"]  # kept
    assert features.loc[("sub-002", "m06"), "t1w_rating"] == "pass"
    assert features.loc[("sub-002", "m06"), "qc_excluded_streams"] != "dwi"
    assert features.loc[("sub-001", "m06"), "qc_status"] == "unrated"
    page = (out / "reports" / "sub-001_ses-baseline.html").read_text()
    assert "Excluded from the models" in page and "signal dropout" in page
    assert "Excluded from the models" not in (out / "reports" / "sub-002_ses-m06.html").read_text()
    index = (out / "reports" / "index.html").read_text()
    assert "[fail]" in index and "[pass]" in index
    # ... and the statistics leave the failed session's DWI features out, and say so
    exclusions = _read(out / "stats" / "exclusions.tsv")
    qc = exclusions[exclusions["reason"].str.startswith("QC rating 'fail' of dwi")]
    assert qc[["participant_id", "session"]].values.tolist() == [["sub-001", "baseline"]]
    assert "signal dropout" in qc["reason"].iloc[0]
    assert "QC rating &#39;fail&#39; of dwi" in (out / "stats" / "report.html").read_text() or \
        "QC rating 'fail' of dwi" in (out / "stats" / "report.html").read_text()


@pytest.mark.browser
def test_real_pages_render_in_chromium(runs, page, serve, tmp_path):
    base = serve(runs["out"] / "reports")
    page.goto(base + "/index.html")
    assert page.locator("#sessions tbody tr").count() == 4
    page.click("text=sub-001 · baseline")
    page.wait_for_url("**/sub-001_ses-baseline.html")
    figures = page.locator(".reportlet img")
    assert figures.count() >= 10                        # every stream's reportlets
    widths = figures.evaluate_all("imgs => imgs.map(img => img.complete ? img.naturalWidth : 0)")
    assert min(widths) > 400, widths
    assert "dwi" in page.text_content("#excluded-banner")
    page.screenshot(path=str(tmp_path / "real.png"), full_page=True)
