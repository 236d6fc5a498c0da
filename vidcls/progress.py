"""Progress bars that animate on a terminal and stay short in log files (CI, nohup)."""

from __future__ import annotations

import sys

LOG_INTERVAL_SECONDS = 15.0


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True):
    """A tqdm bar; off a terminal it redraws at most every 15 s, one line each time."""
    from tqdm import tqdm

    on_terminal = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=on_terminal,
                mininterval=0.1 if on_terminal else LOG_INTERVAL_SECONDS,
                ascii=None if on_terminal else True)
