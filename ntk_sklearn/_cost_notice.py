"""A one-time notice when kernel work will take long, even at ``verbose=0``.

The kernel tiles of one task (a training kernel, a test kernel) are counted by
:class:`~ntk_sklearn._progress.Progress`; after its second tile, the time per tile measured
since the first one (the first also compiles) times the tiles left estimates the duration.
Above :data:`THRESHOLD` seconds a :class:`LongComputationWarning` says so, once per task, so a
user of ``fit`` or ``predict`` on many samples learns the cost before waiting for it. Silence
it with ``warnings.filterwarnings("ignore", category=ntk_sklearn.LongComputationWarning)``.
"""

from __future__ import annotations

import time

from ntk_sklearn import _warnings
from ntk_sklearn._progress import format_seconds

#: Estimated durations above this many seconds are announced.
THRESHOLD = 60.0
#: Seconds of tiles (after the first) that the estimate is made from, at least.
MIN_SECONDS = 3.0


class LongComputationWarning(UserWarning):
    """Kernel work estimated, from its first tiles, to take more than about a minute."""


def notice(progress) -> None:
    """Called after each step of ``progress``: warn once if its task will take long.

    The estimate waits for :data:`MIN_SECONDS` of tiles after the first (or 5 % of the tiles),
    so that one fast or slow tile does not decide it; work that passes :data:`THRESHOLD`
    before then is announced as it is.
    """
    state = progress.__dict__
    if state.get("_noticed") or progress.total < 3:
        return
    now = time.perf_counter()
    if progress.done <= 1:
        state["_first_step"] = now
        return
    measured = now - state.get("_first_step", progress.start)
    elapsed = now - progress.start
    if measured < MIN_SECONDS and progress.done < 0.05 * progress.total and elapsed < THRESHOLD:
        return
    state["_noticed"] = True  # one estimate per task, from the tiles after the first
    per_tile = measured / (progress.done - 1)
    total = elapsed + per_tile * (progress.total - progress.done)
    if total > THRESHOLD:
        _warnings.warn(
            f"[ntk_sklearn] {progress.what}: about {format_seconds(total)} for "
            f"{progress.total} kernel tiles (estimated from the first {progress.done}). "
            "verbose=1 prints progress; fewer samples, dtype='float32' or a cheaper "
            "architecture cut it. Silence this with warnings.filterwarnings('ignore', "
            "category=ntk_sklearn.LongComputationWarning).",
            LongComputationWarning,
        )
