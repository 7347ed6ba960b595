"""Progress lines: a start/end line with the elapsed time for a step, done/total lines
for a loop at most every ``every_s`` seconds plus the last one."""

from __future__ import annotations

import logging

from pipeline.progress import Progress, step


def test_step_logs_start_and_end_with_elapsed(caplog):
    with caplog.at_level(logging.INFO, logger="pipeline.progress"), step("Atropos"):
        pass
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "Atropos ..." and messages[1].startswith("Atropos done (")


def test_loop_logs_only_when_due_and_at_the_end(caplog, monkeypatch):
    clock = iter([0.0] + [1.0 * k for k in range(1, 11)])
    monkeypatch.setattr("pipeline.progress.time.perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="pipeline.progress"):
        progress = Progress("realign", 10, every_s=4.0)
        for _ in range(10):
            progress.update()
    messages = [r.getMessage() for r in caplog.records]
    # due at 4 s and 8 s, and the last item (10 s)
    assert messages == ["realign: 4/10 (4 s elapsed)", "realign: 8/10 (8 s elapsed)",
                        "realign: 10/10 (10 s elapsed)"]


def test_thickness_logs_its_long_steps(caplog):
    """The Laplace thickness (minutes on a 1 mm brain) says which step runs."""
    import numpy as np

    from pipeline.anat.laplace import laplace_thickness

    grid = np.indices((24, 24, 24)).astype(float) - 11.5
    radius = np.sqrt((grid**2).sum(axis=0))
    wm, gm = radius < 6, (radius >= 6) & (radius < 9)
    with caplog.at_level(logging.INFO, logger="pipeline.anat.laplace"):
        thickness = laplace_thickness(gm, wm, (1.0, 1.0, 1.0))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("thickness: Laplace potential over") and m.endswith("...")
               for m in messages), messages
    assert any(m.startswith("thickness: path lengths to both surfaces done (") for m in messages)
    assert 2.0 < np.median(thickness[gm & (thickness > 0)]) < 4.0  # a 3 mm shell
