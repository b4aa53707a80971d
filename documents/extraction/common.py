"""What every reader shares: the ``Section`` a reader returns, the ``Limits`` of one file and
the ``ExtractionError`` (with the messages) that a reader raises; the time limit (SIGALRM) and
the text budget that bound a reader; ``clean_text``; the section builder that cuts sections
at headings and spends every character it keeps; and the text decoding of the text formats.
The contract is in the package docstring (``documents/extraction/__init__.py``).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from documents import filetypes

# The package logs under one name, "documents.extraction", as the single module did.
log = logging.getLogger(__package__)


@dataclass(frozen=True)
class Section:
    text: str
    page: int | None = None
    headings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Limits:
    """How much one file may make the worker read (see docs/security.md, "Parser limits")."""

    max_chars: int  # characters of extracted text
    max_pages: int  # PDF pages
    max_uncompressed_bytes: int  # bytes inflated out of a Word document's archive
    max_seconds: float = 300.0  # time spent reading one file

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(
            max_chars=settings.EXTRACT_MAX_CHARS,
            max_pages=settings.EXTRACT_MAX_PAGES,
            max_uncompressed_bytes=settings.EXTRACT_MAX_UNCOMPRESSED_BYTES,
            max_seconds=settings.EXTRACT_MAX_SECONDS,
        )


class ExtractionError(Exception):
    """The file cannot be turned into text; ``str(exc)`` is the message to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


TOO_DEEP = "this file nests its content too deeply to be read"
OUT_OF_MEMORY = "this file needs more memory to read than the server has — split it into smaller files"


class _TimeUp(BaseException):
    """Extraction ran past ``Limits.max_seconds``. A BaseException, like KeyboardInterrupt, so
    that a parser's ``except Exception`` (pypdf has several) cannot swallow it."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise ``_TimeUp`` in the block once ``seconds`` have passed, even inside a long
    pure-Python loop of a parser (SIGALRM, in the main thread, as the django-q2 worker runs
    tasks). An alarm already set around the block (django-q2's task timeout uses one, so does
    pytest-timeout) keeps its deadline and its handler: it fires at its time, during the block
    or after it. Elsewhere (another thread, no SIGALRM) ``_TextBudget.check`` is the only bound,
    between paragraphs and pages."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.getsignal(signal.SIGALRM)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, 0)  # paused; 0.0: no alarm was set
    started = time.monotonic()
    ours_first = not outer or seconds < outer
    outer_fired = False

    def on_alarm(signum, frame):
        nonlocal outer_fired
        if ours_first:
            raise _TimeUp
        # The outer deadline came first: deliver the signal to its handler.
        outer_fired = True
        signal.signal(signal.SIGALRM, previous)
        signal.raise_signal(signal.SIGALRM)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds if ours_first else outer)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer and not outer_fired:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))


class _TextBudget:
    """The limits of one extraction, and the characters of text taken so far."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.used = 0
        self.deadline = time.monotonic() + limits.max_seconds

    def check(self, pending: int = 0) -> None:
        """Raise once the text taken, plus ``pending`` characters not yet taken, is past the
        limit, or the time is up (see ``_time_limit``)."""
        if time.monotonic() > self.deadline:
            raise _TimeUp
        if self.used + pending > self.limits.max_chars:
            raise ExtractionError(
                f"this file holds more than {self.limits.max_chars:,} characters of text, the most kb takes "
                "from one document — split it into smaller files"
            )

    def spend(self, characters: int) -> None:
        self.used += characters
        self.check()


# -- cleaning ---------------------------------------------------------------------------------

# Patterns here read uploaded text and must take time linear in it (see documents/filetypes.py).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Normalise line ends and spaces, drop control characters; keep paragraph breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


class _SectionBuilder:
    """Collects paragraphs under the current heading path and cuts a section at each heading.

    Every character it keeps is spent from ``budget``, so no file yields more text than
    ``Limits.max_chars``; a section spends at least ``_SECTION_MIN_CHARS`` (it becomes at least
    one passage to embed and store, however short).
    """

    def __init__(self, budget: _TextBudget) -> None:
        self.budget = budget
        self.sections: list[Section] = []
        self._stack: list[tuple[int, str]] = []  # (level, heading text)
        self._heading: str | None = None
        self._paragraphs: list[str] = []
        self._chars = 0  # of the section being collected
        # A str costs about 50 bytes besides its text: a section of millions of one-letter
        # paragraphs keeps them joined a few hundred at a time.
        self._joined: list[str] = []

    def heading(self, level: int, text: str) -> None:
        text = clean_text(text).replace("\n", " ")
        if not text:
            return
        self.budget.spend(len(text))
        self._flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._heading = text
        self._chars = len(text)

    def paragraph(self, text: str) -> None:
        text = clean_text(text)
        if text:
            self.budget.spend(len(text))
            self._chars += len(text)
            self._paragraphs.append(text)
            if len(self._paragraphs) >= 256:
                self._joined.append("\n\n".join(self._paragraphs))
                self._paragraphs = []

    def _flush(self) -> None:
        # A heading with nothing under it makes no section: its text is in its children's path.
        if self._paragraphs or self._joined:
            parts = ([self._heading] if self._heading else []) + self._joined + self._paragraphs
            headings = tuple(text for _, text in self._stack)
            self.sections.append(Section(text="\n\n".join(parts), headings=headings))
            self.budget.spend(max(0, _SECTION_MIN_CHARS - self._chars))
        self._paragraphs = []
        self._joined = []
        self._chars = 0

    def finish(self) -> list[Section]:
        self._flush()
        return self.sections


# What a section costs at least, in characters of the text budget: each section (a page, the
# text under a heading) becomes at least one passage, however short, so a file of a million
# one-word sections would otherwise be a million passages to embed and store.
_SECTION_MIN_CHARS = 100


def _decode(data: bytes) -> str:
    try:
        return filetypes.decode_text(data)
    except filetypes.UnsupportedFile as exc:
        raise ExtractionError(str(exc)) from None
