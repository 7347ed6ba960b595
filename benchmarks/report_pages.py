"""QC report benchmark: build time and size of session pages and the dashboard, and
the load time of a page in headless Chromium (target: <= 5 MB and < 2 s per page).

    python benchmarks/report_pages.py --subjects 50 --reportlets 6 --json out.json

A session page carries ``--reportlets`` figures (the sample brain-mask mosaic, 72 dpi),
as a session will once every stream registers its reportlets.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=50)
    parser.add_argument("--reportlets", type=int, default=6, help="figures per session page")
    parser.add_argument("--chromium", default="/usr/bin/chromium",
                        help="Chromium for the load-time measurement ('' to skip)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    from pipeline.cli import main as resstore
    from tests.browser.sample import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sample = write_sample(tmp / "in", n_subjects=args.subjects)
        common = ["--features", str(sample["features"]), "--inventory", str(sample["inventory"]),
                  "--study", "benchmark"]
        mods = ("T1w", "FLAIR", "dwi", "bold")
        times, sizes = [], []
        for (pid, ses), items in sample["reportlets"].items():
            many = [dict(items[0], modality=mods[i % 4], step=f"step{i}", title=f"Step {i}")
                    for i in range(args.reportlets)]
            page = tmp / "reports" / f"{pid}_ses-{ses}.html"
            start = time.perf_counter()
            resstore(["report-session", "--participant", pid, "--session", ses,
                      "--reportlets", json.dumps(many), "--out", str(page), *common])
            times.append(time.perf_counter() - start)
            sizes.append(page.stat().st_size)
        start = time.perf_counter()
        resstore(["report-index", "--out", str(tmp / "reports" / "index.html"), *common])
        index_s = time.perf_counter() - start
        result = {
            "sessions": len(times), "reportlets_per_page": args.reportlets,
            "page_build_s_median": sorted(times)[len(times) // 2], "page_build_s_max": max(times),
            "page_mb_max": max(sizes) / 1e6, "index_build_s": index_s,
            "index_mb": (tmp / "reports" / "index.html").stat().st_size / 1e6,
        }
        if args.chromium and Path(args.chromium).exists():
            result.update(_load_times(args.chromium, tmp / "reports", page.name))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _load_times(chromium, folder, page_name) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_FLAGS

    script = ("(() => { const n = performance.getEntriesByType('navigation')[0];"
              " return n.loadEventEnd; })()")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        tab = browser.new_page()
        out = {}
        for name in (page_name, "index.html"):
            tab.goto((folder / name).as_uri())
            out[f"load_ms_{'index' if name == 'index.html' else 'page'}"] = float(tab.evaluate(script))
        browser.close()
    return out


if __name__ == "__main__":
    sys.exit(main())
