"""QC reports in real headless Chromium: sort, rate, export, escaping, size and speed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.report.ratings import RATING_COLUMNS, merge_ratings, read_ratings
from tests.browser.sample import INJECTION, OUTLIER, build_reports, write_sample

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("qc")
    sample = write_sample(root / "inputs", inject=True)
    return build_reports(sample, root / "reports"), sample


def _sorted_sessions(page):
    return page.locator("#sessions tbody tr:not(.hidden) th a").all_text_contents()


def _download(page, button) -> str:
    with page.expect_download() as info:
        page.click(button)
    return Path(info.value.path()).read_text()


def test_dashboard_sorts_filters_and_links(page, reports, serve):
    folder, sample = reports
    page.goto(serve(folder) + "/index.html")
    rows = page.locator("#sessions tbody tr")
    assert rows.count() == 12
    header = page.locator("#sessions thead th[data-column='t1w_snr'] button")
    header.click()
    assert page.locator("#sessions thead th[data-column='t1w_snr']").get_attribute(
        "aria-sort") == "ascending"
    assert _sorted_sessions(page)[0] == "sub-003 · baseline"          # planted low SNR first
    header.click()
    assert _sorted_sessions(page)[-1] == "sub-003 · baseline"
    values = [float(v) for v in page.locator(
        "#sessions tbody td.mod-T1w:nth-child(n)").all_text_contents() if _is_number(v)]
    assert values                                                      # numeric cells shown
    # the planted outlier is highlighted, and the outliers-only filter keeps it
    pid, ses, column = OUTLIER
    row = page.locator(f"#sessions tbody tr[data-participant='{pid}'][data-session='{ses}']")
    assert "outlier" in row.locator("td.outlier").first.get_attribute("class")
    page.check("#outliers-only")
    assert "sub-003 · baseline" in _sorted_sessions(page)
    assert len(_sorted_sessions(page)) < 12
    page.uncheck("#outliers-only")
    page.fill("#filter", "m06")
    assert all(s.endswith("m06") for s in _sorted_sessions(page)) and len(_sorted_sessions(page)) == 6
    page.fill("#filter", "")
    # every link opens an existing page
    hrefs = page.locator("#sessions tbody th a").evaluate_all("els => els.map(e => e.href)")
    assert len(hrefs) == 12
    for href in hrefs[:3]:
        assert page.request.get(href).ok


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_rate_export_and_read_back(page, reports, serve, tmp_path):
    folder, sample = reports
    page.goto(serve(folder) + "/index.html")
    assert page.text_content("#progress-text").startswith("0 of 47")
    page.click("text=sub-002 · m06")
    page.wait_for_url("**/sub-002_ses-m06.html")
    assert page.text_content("#participant") == "sub-002"
    page.fill("#rater", "Reviewer A")
    page.check("#modality-T1w input[value=pass]")
    page.check("#modality-dwi input[value=fail]")
    page.fill("#modality-dwi textarea", "signal dropout\tin slices 3-5 " + INJECTION)
    page.check("#modality-FLAIR input[value=uncertain]")
    exported = _download(page, "#export-page")
    table = pd.read_csv(io.StringIO(exported), sep="\t", dtype=str, keep_default_na=False)
    assert tuple(table.columns) == RATING_COLUMNS
    got = {(r.participant_id, r.session, r.modality): r for r in table.itertuples()}
    assert set(got) == {("sub-002", "m06", "T1w"), ("sub-002", "m06", "dwi"),
                        ("sub-002", "m06", "FLAIR")}
    dwi = got[("sub-002", "m06", "dwi")]
    assert (dwi.rating, dwi.rater) == ("fail", "Reviewer A")
    assert dwi.comment == "signal dropout in slices 3-5 " + INJECTION  # tab flattened
    assert pd.Timestamp(dwi.timestamp).year >= 2024
    assert got[("sub-002", "m06", "FLAIR")].rating == "uncertain"

    # ratings survive a visit elsewhere; the dashboard counts them and exports all of them
    page.reload()
    assert page.locator("#modality-dwi input[value=fail]").is_checked()
    assert page.input_value("#rater") == "Reviewer A"
    page.click("#to-dashboard")
    page.wait_for_url("**/index.html")
    assert page.text_content("#progress-text").startswith("3 of 47")
    cell = page.locator("#sessions tr[data-participant='sub-002'][data-session='m06'] "
                        "td[data-modality='dwi'] .browser-rating")
    assert cell.text_content() == "fail"
    everything = _download(page, "#export-all")
    assert everything == exported

    # the pipeline reads the export: the DWI of that session is flagged, its features kept
    path = tmp_path / "ratings.tsv"
    path.write_text(everything)
    features = pd.read_csv(sample["features"], sep="\t", keep_default_na=False, na_values=["n/a"])
    merged = merge_ratings(features, read_ratings(path)).set_index(["participant_id", "session"])
    assert merged.loc[("sub-002", "m06"), "dwi_rating"] == "fail"
    assert merged.loc[("sub-002", "m06"), "qc_excluded_streams"] == "dwi"
    assert merged.loc[("sub-002", "m06"), "qc_status"] == "fail"
    assert np.isfinite(merged.loc[("sub-002", "m06"), "dwi_b0_snr"])
    assert merged.loc[("sub-001", "baseline"), "qc_status"] == "unrated"


def test_injected_markup_is_text_not_code(page, tmp_path, serve):
    """<script> in a participant label, a metrics JSON value and a recorded comment is shown
    as text and never runs."""
    sample = write_sample(tmp_path / "inputs", n_subjects=3, inject=True)
    features = pd.read_csv(sample["features"], sep="\t", keep_default_na=False)
    features.loc[5, "participant_id"] = "sub-" + INJECTION           # a hostile label
    features.to_csv(sample["features"], sep="\t", index=False)
    ratings = tmp_path / "ratings.tsv"
    pd.DataFrame([["sub-001", "baseline", "T1w", "fail", "<b>R</b>", INJECTION,
                   "2025-01-02T10:00:00Z"]], columns=RATING_COLUMNS).to_csv(
        ratings, sep="\t", index=False)
    folder = build_reports(sample, tmp_path / "reports", ratings=ratings)
    base = serve(folder)
    page.goto(base + "/sub-001_ses-baseline.html")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert INJECTION in page.locator("td.metric-value").all_text_contents()
    assert page.text_content(".recorded-comment") == INJECTION
    assert "<b>R</b>" in page.text_content("#modality-T1w .recorded")
    assert "anat" in page.text_content("#excluded-banner")
    # a comment typed in the page goes back into the dashboard through textContent/title only
    page.check("#modality-T1w input[value=pass]")
    page.fill("#modality-T1w textarea", INJECTION)
    page.goto(base + "/index.html")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert ("sub-" + INJECTION + " · m06") in _sorted_sessions(page)
    cell = page.locator("#sessions tr[data-participant='sub-001'][data-session='baseline'] "
                        "td[data-modality='T1w']")
    assert cell.get_attribute("title") == INJECTION
    assert page.evaluate("document.querySelectorAll('script').length") == 2


def test_per_page_export_works_from_a_file(page, reports, serve, tmp_path):
    """Opened as file:// (no server), ratings still save and the page exports its TSV;
    the dashboard served over http (another origin, other storage) imports it."""
    folder, _ = reports
    page.goto((folder / "sub-004_ses-baseline.html").as_uri())
    page.check("#modality-bold input[value=pass]")
    text = _download(page, "#export-page")
    lines = text.strip().split("\n")
    assert lines[0].split("\t") == list(RATING_COLUMNS)
    assert lines[1].split("\t")[:4] == ["sub-004", "baseline", "bold", "pass"]
    # Chromium keeps one localStorage for every file:// page: the dashboard sees the rating
    page.goto((folder / "index.html").as_uri())
    assert page.text_content("#progress-text").startswith("1 of 47")
    exported = tmp_path / "from_file.tsv"
    exported.write_text(text)
    page.goto(serve(folder) + "/index.html")
    assert page.text_content("#progress-text").startswith("0 of 47")   # separate origin storage
    page.set_input_files("#import", str(exported))
    page.wait_for_function("document.getElementById('import-status').textContent !== ''")
    assert page.text_content("#import-status").startswith("imported 1 rating(s)")
    assert page.text_content("#progress-text").startswith("1 of 47")
    assert _download(page, "#export-all") == text


def test_page_size_speed_and_screenshot(page, reports, serve, tmp_path):
    folder, _ = reports
    path = folder / "sub-003_ses-baseline.html"
    assert path.stat().st_size <= 5 * 1024 * 1024
    page.goto(serve(folder) + "/" + path.name)
    timing = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                           " return {load: n.loadEventEnd, size: n.transferSize}; })()")
    assert 0 < timing["load"] < 2000, timing
    assert page.locator(".reportlet img").evaluate("img => img.naturalWidth") > 400
    # the planted outlier is flagged on its page
    row = page.locator("tr.outlier-row", has_text="t1w_snr")
    assert row.count() == 1 and "outlier" in row.text_content()
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape[0] > 1500                                      # the whole page
    assert pixels.std() > 30                                           # not blank
    dark = (pixels < 40).mean()
    assert 0.05 < dark < 0.6                                           # the figure is drawn
