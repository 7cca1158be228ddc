"""Progress lines without a bar: one at once, then at most one per LOG_EVERY_S seconds, and always the last."""

from __future__ import annotations

from ttclab.sampling import ProgressLines


def test_ticks_are_throttled_but_the_last_is_always_written():
    got: list[str] = []
    lines = ProgressLines(got.append)
    lines.line("start")
    for i in range(100):  # far faster than LOG_EVERY_S: none of these is due
        lines.tick(f"tick {i}")
    lines.tick("done", last=True)
    assert got == ["start", "done"]
    lines._last -= 10  # as if 10 s had passed since the last line
    lines.tick("later")
    assert got[-1] == "later" and lines.elapsed >= 0
    quiet = ProgressLines(None)  # --no-progress: nothing, and no error
    quiet.line("x")
    quiet.tick("y", last=True)
