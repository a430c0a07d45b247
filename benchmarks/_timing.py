"""Shared helpers of the benchmark scripts: timing, and running a script in another Python."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run (compilation)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_json_script(python: str, script: str, data) -> dict | None:
    """Run ``script`` in the interpreter ``python`` (e.g. a neural-tangents venv) with ``data`` as
    JSON on its stdin; its last stdout line parsed as JSON, or ``None`` (its stderr printed) if
    it failed."""
    proc = subprocess.run(
        [python, "-c", script], input=json.dumps(data), capture_output=True, text=True, check=False
    )
    if proc.returncode:
        print("neural-tangents run failed:\n" + proc.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])
