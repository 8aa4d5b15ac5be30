"""Evidence a verdict quotes: the learner's own line, an exception named in plain words.

A verdict names what was observed, never a guess: "line 7 of fetch_all(): `time.sleep(1)`",
"TypeError: 'coroutine' object is not subscriptable: an await is missing". Frames of the
standard library, installed packages, the course's own package and exec-generated code are
never the learner's, so a verdict never quotes a ``<frozen ...>`` or library line.
"""

from __future__ import annotations

import linecache
import sysconfig
import textwrap
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import aiohttp

# Frames from these places are not the learner's: the standard library, installed packages,
# the course's own package (its checks and their probe handlers included) and code generated
# with exec() (from Python 3.13, unittest.mock's autospec wrappers run as "<string>").
_NOT_LEARNER = (
    sysconfig.get_paths()["stdlib"],
    sysconfig.get_paths()["purelib"],
    sysconfig.get_paths()["platlib"],
    str(Path(__file__).resolve().parent.parent),
    "<string>",
    "<frozen",
)
# A quoted exception text or line is cut to this many characters.
QUOTE_LIMIT = 120


def is_learner_file(filename: str) -> bool:
    """True for a file of the learner's: a notebook cell, a script, a test module of theirs."""
    return not filename.startswith(_NOT_LEARNER)


@dataclass(frozen=True)
class LearnerLine:
    """A line of the learner's code: which file and function, which line, and its text."""

    filename: str
    function: str
    lineno: int

    @property
    def text(self) -> str:
        """The line's source, read only when a verdict quotes it."""
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self) -> str:
        where = f"line {self.lineno} of {self.function}()"
        text = self.text
        return f"{where}: `{clip(text, 80)}`" if text else where


def learner_line_at(filename: str, function: str, lineno: int) -> LearnerLine:
    """The learner's line ``lineno`` of ``filename``, in ``function``."""
    return LearnerLine(filename, function, lineno)


def learner_line_of_frame(frame: FrameType | None) -> LearnerLine | None:
    """The innermost learner line on the stack that ``frame`` belongs to (``frame`` first)."""
    while frame is not None:
        code = frame.f_code
        if is_learner_file(code.co_filename):
            return learner_line_at(code.co_filename, code.co_name, frame.f_lineno)
        frame = frame.f_back
    return None


def learner_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of ``exc``'s traceback in the learner's own code, if any."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if is_learner_file(frame.filename)
    ]
    return frames[-1] if frames else None


def learner_line(exc: BaseException) -> LearnerLine | None:
    """The learner's line that ``exc`` came from (through any chain of causes)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        frame = learner_frame(error)
        if frame is not None:
            return learner_line_at(frame.filename, frame.name, frame.lineno or 0)
        error = error.__cause__ or error.__context__
    return None


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def exception_text(exc: BaseException) -> str:
    """``TypeError: 'coroutine' object is not subscriptable``, clipped."""
    detail = str(exc)
    name = type(exc).__name__
    return clip(f"{name}: {detail}" if detail else name)


def wrap(text: str, width: int = 80, first: str = "", rest: str = "   ") -> str:
    """``text`` wrapped for an 80-column notebook cell, never breaking a word or a URL."""
    return "\n".join(
        textwrap.wrap(
            text,
            width=width,
            initial_indent=first,
            subsequent_indent=rest,
            break_long_words=False,
            break_on_hyphens=False,
        )
    )


# Raw errors a learner meets often, named in plain words: (test, what it means, the fix).
def _is_unawaited(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, (TypeError, AttributeError)) and (
        "'coroutine'" in text or "coroutine object" in text
    )


def _is_not_awaitable(exc: BaseException) -> bool:
    return isinstance(exc, TypeError) and "can't be used in 'await' expression" in str(exc)


def _awaited_by_aiohttp(exc: BaseException) -> bool:
    """A plain function of the learner's that aiohttp itself awaited (a callback)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return _is_not_awaitable(exc) and bool(frames) and "aiohttp" in Path(frames[-1].filename).parts


def _is_closed_session(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "Session is closed" in str(exc)


def _is_text_mode(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, TypeError) and (
        "must be str, not bytes" in text or "a bytes-like object is required, not 'str'" in text
    )


def _is_closed_file(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and "closed file" in str(exc)


def _is_nested_run(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "from a running event loop" in str(exc)


_KNOWN: tuple[tuple[object, str, str, str], ...] = (
    (
        _is_nested_run,
        "asyncio-run-in-loop",
        "asyncio.run() starts an event loop, and one is already running here",
        "`await` the coroutine instead: `data = await fetch(...)`.",
    ),
    (
        _is_unawaited,
        "missing-await",
        "a coroutine was used as if it were its result: an `await` is missing",
        "put `await` before the call (`data = await response.json()`).",
    ),
    (
        _awaited_by_aiohttp,
        "raised",
        "aiohttp awaited a function of yours that is a plain `def`",
        "a function aiohttp calls for you (`raise_for_status=`, a trace signal, a middleware) "
        "must be `async def`.",
    ),
    (
        _is_not_awaitable,
        "raised",
        "it awaited something that is not awaitable (a plain function's result?)",
        "await only coroutines: a function defined with plain `def` is called without "
        "`await`.",
    ),
    (
        _is_closed_session,
        "raised",
        "it used a session after it was closed (a request after the `async with` block?)",
        "make every request inside the session's `async with` block.",
    ),
    (
        _is_text_mode,
        "raised",
        "a file opened in text mode was given bytes (or the reverse)",
        'open the file in binary mode, `"wb"` or `"rb"`: HTTP bodies are bytes.',
    ),
    (
        _is_closed_file,
        "raised",
        "it used a file after closing it (a write after its `with` block ended?)",
        "keep every read and write inside the file's `with` block.",
    ),
)


def explain(exc: BaseException) -> tuple[str, str, str]:
    """(problem, message, hint) for an exception the learner's code let escape.

    The message starts with "raised", to follow the task's name: "fetch_all raised ...".
    """
    where = learner_line(exc)
    origin = f" ({where})" if where else ""
    for test, problem, meaning, hint in _KNOWN:
        if test(exc):  # type: ignore[operator]
            return problem, f"raised {exception_text(exc)}: {meaning}{origin}.", hint
    if isinstance(exc, aiohttp.ClientResponseError):
        return (
            "raised",
            f"raised ClientResponseError: the server answered {exc.status} "
            f"{clip(exc.message or '', 40)} to {exc.request_info.method} "
            f"{exc.request_info.url.path}{origin}.",
            "",
        )
    return "raised", f"raised {exception_text(exc)}{origin}.", ""
