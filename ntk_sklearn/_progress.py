"""Progress lines for long work (kernel tiles, CG iterations), silent unless asked for.

Like scikit-learn's ``verbose``: ``0`` prints nothing; ``1`` prints a line at most every
:data:`INTERVAL` seconds and one when the work ends; ``2`` or more prints every step.
Lines go to standard output, flushed, so that they show in notebooks and logs as they come.
"""

from __future__ import annotations

import time

#: Seconds between two progress lines at ``verbose=1``.
INTERVAL = 10.0


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Counts steps of one task and prints its progress with an estimate of the time left.

    Parameters
    ----------
    what : str
        The task, e.g. ``"NTK between training inputs"``.
    total : int
        Steps in all (e.g. tiles).
    verbose : int
        ``0``: silent; ``1``: a line every :data:`INTERVAL` seconds and at the end; ``≥ 2``:
        every step.
    unit : str, default="tiles"

    Examples
    --------
    >>> from ntk_sklearn._progress import Progress
    >>> progress = Progress("NTK", total=2, verbose=2)
    >>> progress.step()  # doctest: +ELLIPSIS
    [ntk_sklearn] NTK: 1/2 tiles (50%), ... elapsed, about ... left
    >>> progress.step()  # doctest: +ELLIPSIS
    [ntk_sklearn] NTK: 2/2 tiles (100%) in ...
    """

    def __init__(self, what: str, total: int, verbose: int, unit: str = "tiles"):
        self.what, self.total, self.verbose, self.unit = what, int(total), int(verbose), unit
        self.done = 0
        self.start = self.last = time.perf_counter()

    def step(self, count: int = 1) -> None:
        self.done += count
        from ntk_sklearn._cost_notice import notice  # a warning before long work, at any verbose

        notice(self)
        if self.verbose <= 0:
            return
        now = time.perf_counter()
        elapsed = now - self.start
        head = f"[ntk_sklearn] {self.what}: {self.done}/{self.total} {self.unit}"
        if self.done >= self.total:
            print(f"{head} (100%) in {format_seconds(elapsed)}", flush=True)
        elif self.verbose >= 2 or now - self.last >= INTERVAL:
            left = elapsed / self.done * (self.total - self.done)
            print(
                f"{head} ({100 * self.done // self.total}%), {format_seconds(elapsed)} elapsed, "
                f"about {format_seconds(left)} left",
                flush=True,
            )
            self.last = now


def report(verbose: int, message: str) -> None:
    """Print ``message`` when ``verbose > 0``."""
    if verbose > 0:
        print(f"[ntk_sklearn] {message}", flush=True)
