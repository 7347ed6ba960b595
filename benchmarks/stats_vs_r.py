"""Agreement of every model with R: the largest relative difference per model (target < 1e-4).

Runs the R references of ``tests/unit/test_stats_vs_r.py`` (one R session: nlme + pbkrtest, lmerTest,
glm, MASS::polr, mantelhaen.test, vcdExtra::CMHtest, fisher.test, chisq.test, MASS::glm.nb,
survival::coxph / survdiff) on the same simulated data and prints, for each model, the largest
relative difference over the compared quantities (estimates, SEs, Kenward-Roger df, CIs, p).

    python benchmarks/stats_vs_r.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

from tests.unit.test_stats_vs_r import relative_differences, run_reference


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the differences as JSON")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        rel = relative_differences(run_reference(Path(tmp)))
    print(f"{'model':20s} {'max relative difference':>24s}  quantities  worst")
    for model, values in rel.items():
        worst = max(values, key=values.get)
        print(f"{model:20s} {values[worst]:24.2e}  {len(values):10d}  {worst}")
    overall = max(max(v.values()) for v in rel.values())
    print(f"largest over every model: {overall:.2e} (target < 1e-4): {'PASS' if overall < 1e-4 else 'FAIL'}")
    if args.out:
        Path(args.out).write_text(json.dumps(rel, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
