"""Rate-limited logging: a flood of the same line (one per refused connection,
one per timed-out request) becomes one line per interval with a count.

    from collector.logfilter import install_rate_limit
    install_rate_limit()  # on the root logger's handlers, after logging.basicConfig

Lines are "the same" when they come from the same logger at the same level
with the same format string, whatever their arguments: "request %r timed out"
for a thousand ids is one kind of line. The first of a kind is written; the
next ones within `interval` seconds are counted, and the first one after it
says how many were left out: "... (N more suppressed)". A count still pending
when the flood stops is not written on its own. DEBUG records all pass: who
asks for them wants every one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

DEFAULT_INTERVAL = 10.0
# Kinds of lines remembered; past this, kinds quiet for an interval are forgotten.
MAX_KINDS = 1000


class RateLimitFilter(logging.Filter):
    """Lets through at most one record per kind per `interval` seconds."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], list] = {}  # kind -> [last written at, suppressed since]
        self._lock = threading.Lock()  # handlers filter outside their own lock

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        kind = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            state = self._kinds.get(kind)
            if state is not None and now - state[0] < self.interval:
                state[1] += 1
                return False
            suppressed = state[1] if state is not None else 0
            if state is None and len(self._kinds) >= MAX_KINDS:
                self._forget_quiet(now)
            self._kinds[kind] = [now, 0]
        if suppressed:
            # Appended to the format string: the arguments still apply to it.
            record.msg = f"{record.msg} ({suppressed} more suppressed)"
        return True

    def _forget_quiet(self, now: float) -> None:
        for kind in [k for k, (last, _) in self._kinds.items() if now - last >= self.interval]:
            del self._kinds[kind]
        if len(self._kinds) >= MAX_KINDS:  # all busy: start over rather than grow
            self._kinds.clear()


def install_rate_limit(interval: float = DEFAULT_INTERVAL, logger: logging.Logger | None = None) -> None:
    """Rate-limit every handler of `logger` (default: the root logger), once:
    records propagated from other loggers (asyncio, uvicorn) pass these handlers too."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RateLimitFilter) for f in handler.filters):
            handler.addFilter(RateLimitFilter(interval))
