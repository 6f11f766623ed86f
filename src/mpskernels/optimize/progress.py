"""Progress of a long optimize(): a transient rich progress bar on a terminal (stderr), log lines otherwise
(logger "mpskernels.optimize", INFO), so tests and pipelines stay quiet unless they ask for the log."""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("mpskernels.optimize")


class Progress:
    """start(what, total), then step(module) per item, then close()."""

    def __init__(self) -> None:
        self.what, self.total, self.done = "", 0, 0
        self._bar: Any = None
        self._task: Any = None

    def start(self, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        if total and sys.stderr.isatty():
            try:
                from rich.progress import Progress as RichProgress
            except ImportError:  # rich is an optional dependency: log lines instead
                return
            self._bar = RichProgress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task(what, total=total)

    def step(self, item: str) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"{self.what}: {item}")
        else:
            log.info("optimize: %s %d/%d: %s", self.what, self.done, self.total, item)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
