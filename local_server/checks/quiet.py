"""Keep a check's noise off the learner's screen, and keep it as evidence.

While a check runs, nothing it or the learner's code does may reach stderr: the notebook would
show it in a red box under the verdict. ``Quiet`` collects, for the whole run, what would have:

- warnings (``coroutine ... was never awaited``, ``ResourceWarning``, deprecations);
- log records of every logger (the learner's ``logger.exception`` included), which no stream
  handler prints while the check runs;
- exceptions no one could catch: in a thread, in ``__del__`` (``sys.unraisablehook``), and the
  contexts asyncio's loop reports ("Task exception was never retrieved");
- anything written to ``sys.stderr`` directly.

Checks read them as evidence; the harness turns the telling ones into verdicts.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any


class _Recorder(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.NOTSET)
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)


class Quiet:
    """What a check's run would have printed to stderr, collected instead."""

    def __init__(self) -> None:
        self.warnings: list[warnings.WarningMessage] = []
        self.records: list[logging.LogRecord] = []
        self.unraisable: list[Any] = []
        self.thread_errors: list[threading.ExceptHookArgs] = []
        self.loop_errors: list[dict[str, Any]] = []
        self.stderr = io.StringIO()

    def loop_exception_handler(self, loop: Any, context: dict[str, Any]) -> None:
        """For ``loop.set_exception_handler``: keep what asyncio would log."""
        self.loop_errors.append(context)

    def never_awaited(self) -> list[str]:
        """The messages of "coroutine ... was never awaited" warnings."""
        return [
            str(w.message)
            for w in self.warnings
            if issubclass(w.category, RuntimeWarning) and "never awaited" in str(w.message)
        ]

    def lost_task_errors(self) -> list[BaseException]:
        """Exceptions of tasks nobody awaited ("Task exception was never retrieved")."""
        return [
            context["exception"]
            for context in self.loop_errors
            if isinstance(context.get("exception"), BaseException)
            and "never retrieved" in context.get("message", "")
        ]

    @contextlib.contextmanager
    def collecting(self) -> Iterator[Quiet]:
        """Collect instead of print, for the block; everything is restored afterwards."""
        original_stderr = sys.stderr
        streams = _stderr_handlers(original_stderr)
        recorder = _Recorder(self.records)
        root = logging.getLogger()
        saved_unraisable, saved_excepthook = sys.unraisablehook, threading.excepthook
        with warnings.catch_warnings(record=True) as caught:
            self.warnings = caught  # filled as warnings come: a check can read them live
            warnings.simplefilter("always")
            sys.stderr = self.stderr
            for handler in streams:
                handler.setStream(self.stderr)
            root.addHandler(recorder)
            sys.unraisablehook = self.unraisable.append
            threading.excepthook = self.thread_errors.append
            try:
                yield self
            finally:
                threading.excepthook = saved_excepthook
                sys.unraisablehook = saved_unraisable
                root.removeHandler(recorder)
                for handler in streams:
                    handler.setStream(original_stderr)
                sys.stderr = original_stderr


def _stderr_handlers(stderr: Any) -> list[logging.StreamHandler]:
    """Every logging handler that writes to ``stderr`` (a learner's ``basicConfig`` too)."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
        and handler.stream in (stderr, sys.__stderr__)
    ]
