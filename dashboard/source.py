"""Where the dashboard's data comes from: the engine's JSON API, or its SQLite store.

    source = EngineSource("http://127.0.0.1:8080")     # mcp-slo engine --listen
    source = StoreSource("mcp-slo.db", interval=30)     # the engine's --store, on the same host
    data = CachedSource(source, ttl=5)                  # what the app's callbacks share
    data.slos()       # [Evaluated(SLOResult, evaluated_at, stale), ...] of GET /api/v1/slos
    data.canaries()   # [Evaluated(CanaryDecision, ...), ...] of GET /api/v1/canaries
    data.canary_history("filesystem", since=t)   # its logged decisions since t, oldest first
    data.status()     # Status of the latest evaluation (age, stale, why)
    data.maintenance(since, until)   # Maintenance: the windows' occurrences (GET /api/v1/maintenance)

Every read gives the typed results of slo.results, or a SourceError. Both sources read the
same JSON (slo.engine.answers shapes it for the API and for StoreSource) with the same
`typed`, so they give the same results; neither raises for what goes wrong at run time: an
unreachable engine, an answer that is not JSON or not the engine's, or a store that cannot
be read come back as a `SourceError` whose message the page can show as it is (it names the
engine's URL without credentials, or the store's path). No read reaches Prometheus.
StoreSource knows the planned maintenance windows only when it is given them (the spec's,
`mcp-slo dashboard --store PATH --config SPEC`); the run-time ones are in the store.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from dashboard.maintenance_data import Maintenance, from_listing
from slo.engine import answers, maintenance_api
from slo.engine.store import Store, StoreError
from slo.maintenance import Window
from slo.results import CanaryDecision, Evaluated, SLOResult

T = TypeVar("T")

SLOs = list[Evaluated[SLOResult]]  # what a source reads: typed results with their times
Decisions = list[Evaluated[CanaryDecision]]

DEFAULT_TIMEOUT = 5.0  # seconds for the engine's answer (2 to connect): a page waits for it
DEFAULT_TTL = 5.0  # seconds a read is reused by every callback
# the maintenance windows CachedSource reads: the longest chart range (30d) and a step before,
# and a day past now (within the engine's 90 days)
MAINTENANCE_BACK, MAINTENANCE_AHEAD = 31 * 86400, 86400


@dataclass(frozen=True)
class SourceError:
    """Why the data could not be read; `message` is one line fit for the page."""

    kind: str  # "unreachable", "http", "bad_response", "store"
    message: str


@dataclass(frozen=True)
class Status:
    """The engine's latest evaluation, as /readyz describes it."""

    evaluated_at: str | None  # RFC 3339; None before the first evaluation
    age_seconds: float | None  # its age when read
    stale: bool
    reason: str | None  # why the engine is not ready (no evaluation yet, stale), None when it is
    last_error: str | None  # the engine's last failed tick (the engine redacts credentials)
    read_at: float  # time.monotonic() of the read: the age keeps growing while the Status is cached

    def age(self, now: float | None = None) -> float | None:
        """The evaluation's age now, in seconds."""
        if self.age_seconds is None:
            return None
        return self.age_seconds + ((time.monotonic() if now is None else now) - self.read_at)

    @classmethod
    def from_readyz(cls, body: dict, read_at: float) -> Status:
        age = body.get("age_seconds")
        return cls(evaluated_at=body.get("evaluated_at"), age_seconds=float(age) if age is not None else None,
                   stale=bool(body.get("stale", not body.get("ready"))), reason=body.get("reason"),
                   last_error=body.get("last_error"), read_at=read_at)


class Source(Protocol):
    description: str  # "the engine at URL" or "the store PATH", for messages

    def slos(self) -> SLOs | SourceError: ...

    def canaries(self) -> Decisions | SourceError: ...

    def canary_history(self, service: str, since: float | None = None) -> Decisions | SourceError: ...

    def status(self) -> Status | SourceError: ...

    def maintenance(self, since: float, until: float) -> Maintenance | SourceError: ...


def typed(items: Any, read: Callable[[Mapping], T]) -> list[Evaluated[T]]:
    """An API answer of results typed: a JSON list of `read`'s JSON forms, each with its
    `evaluated_at` (RFC 3339) and `stale` (false when absent: a decision log has none);
    ValueError saying what is not."""
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError("is not a JSON list of objects")
    out = []
    for i, item in enumerate(items):
        try:
            result, at, stale = read(item), item.get("evaluated_at"), item.get("stale", False)
            if not isinstance(at, str):
                raise ValueError(f"evaluated_at is not a time: {at!r}")
            if not isinstance(stale, bool):
                raise ValueError(f"stale is not true or false: {stale!r}")
            out.append(Evaluated(result, answers.parse_time(at), stale))
        except ValueError as exc:
            raise ValueError(f"has an unreadable item {i}: {exc}") from None
    return out


# --- the engine's API ----------------------------------------------------------------------


def display_url(url: str) -> str:
    """`url` without credentials (user:password@), for messages and the page."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class EngineSource:
    """Reads the engine's API over HTTP (httpx; one pooled client, safe to share between threads).

    Credentials in the URL (http://user:password@host:8080) are sent as basic auth and never
    shown: `url` and every message carry the URL without them.
    """

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None):
        parts = urlsplit(str(url).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the engine's URL must be http(s)://host:port[/path], got {display_url(str(url))!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"the engine's URL must not have a query string or fragment: {display_url(str(url))!r}")
        auth = None
        if parts.username is not None or parts.password is not None:
            auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
        self.url = display_url(urlunsplit(parts)).rstrip("/")
        self.timeout = timeout
        self.description = f"the engine at {self.url}"
        self._client = httpx.Client(base_url=self.url, auth=auth, transport=transport,
                                    timeout=httpx.Timeout(timeout, connect=min(2.0, timeout)),
                                    headers={"Accept": "application/json"}, follow_redirects=False)

    def slos(self) -> SLOs | SourceError:
        return self._list("/api/v1/slos", SLOResult.from_json)

    def canaries(self) -> Decisions | SourceError:
        return self._list("/api/v1/canaries", CanaryDecision.from_json)

    def canary_history(self, service: str, since: float | None = None) -> Decisions | SourceError:
        """The service's logged decisions since `since` (unix seconds), oldest first, the newest
        answers.HISTORY_LIMIT at most; without the per-test evidence, which the log does not show."""
        params = {"evidence": "false", **({"since": repr(float(since))} if since is not None else {})}  # exact
        return self._list(f"/api/v1/canaries/{quote(service, safe='')}/history", CanaryDecision.from_json, params)

    def status(self) -> Status | SourceError:
        # 503 is an answer here: no evaluation yet, or a stale one (the body says which)
        body = self._get("/readyz", ok=(200, 503))
        if isinstance(body, SourceError):
            return body
        if not isinstance(body, dict):
            return self._bad("/readyz", "is not a JSON object")
        return Status.from_readyz(body, time.monotonic())

    def maintenance(self, since: float, until: float) -> Maintenance | SourceError:
        """The maintenance windows' occurrences overlapping [since, until) (unix seconds), and
        each planned window's current or next one."""
        path = "/api/v1/maintenance"
        body = self._get(path, ok=(200, 400), params={"since": repr(float(since)), "until": repr(float(until))})
        if isinstance(body, SourceError):
            return body
        if isinstance(body, dict) and isinstance(body.get("error"), str):  # a 400: too long a range
            return SourceError("http", f"{self.description} refused {path}: {body['error'][:200]}")
        try:
            return from_listing(body)
        except ValueError as exc:
            return self._bad(path, str(exc))

    def close(self) -> None:
        self._client.close()

    def _list(self, path: str, read: Callable[[Mapping], T],
              params: dict[str, str] | None = None) -> list[Evaluated[T]] | SourceError:
        body = self._get(path, params=params)
        if isinstance(body, SourceError):
            return body
        try:
            return typed(body, read)
        except ValueError as exc:
            return self._bad(path, str(exc))

    def _get(self, path: str, ok: tuple[int, ...] = (200,), params: dict[str, str] | None = None) -> Any:
        try:
            response = self._client.get(path, params=params)
        except httpx.TimeoutException:
            return SourceError("unreachable", f"{self.description} did not answer {path} within {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return SourceError("unreachable", f"cannot reach {self.description}: {self._reason(exc)}")
        if response.status_code not in ok:
            return SourceError("http", f"{self.description} answered {path} with HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            return self._bad(path, f"is not JSON ({kind})")

    def _bad(self, path: str, what: str) -> SourceError:
        return SourceError("bad_response", f"the answer of {self.description} to {path} {what}")

    @staticmethod
    def _reason(exc: Exception) -> str:
        # httpx names the OS error ("[Errno 111] Connection refused"); the client only ever
        # had the URL without credentials, so nothing secret can be in it
        return " ".join(str(exc).split()) or type(exc).__name__


# --- the engine's store --------------------------------------------------------------------


class StoreSource:
    """Reads the engine's SQLite store (the same host, or a shared volume): no engine API needed.

    Read-only: a missing file is reported, never created. The store does not know the engine's
    schedule, so staleness follows the engine's rule for the default --timeout: older than two
    missed ticks of `interval` seconds. The engine's last error is not in the store either.
    """

    def __init__(self, path: str | os.PathLike, *, interval: float = 30.0, now: Callable[[], float] = time.time,
                 planned: Sequence[Window] = ()):
        if not interval > 0:
            raise ValueError(f"the engine's interval must be positive, got {interval!r}")
        self.path = os.fspath(path)
        self.stale_after = 2 * interval + 0.8 * interval  # as Engine.stale_after with the default timeout
        self.now = now
        self.planned = tuple(planned)  # the spec's maintenance windows: the store has the run-time ones only
        self.description = f"the store {self.path}"
        self._store: Store | None = None
        self._lock = threading.Lock()

    def slos(self) -> SLOs | SourceError:
        def read(store: Store) -> SLOs:
            snapshot, now = store.latest(), self.now()
            stale = self._stale(None if snapshot is None else snapshot.evaluated_at, now)
            return _typed(answers.slo_items(snapshot, stale, now)[0], SLOResult.from_json)

        return self._read(read)

    def canaries(self) -> Decisions | SourceError:
        def read(store: Store) -> Decisions:
            tick = store.latest_tick()
            if tick is None:
                return []
            # as Engine.canaries: the latest tick's decisions (older ones are history)
            decisions = [d for d in store.canary_latest() if d.evaluated_at == tick[1]]
            return _typed(answers.canary_items(decisions, self._stale(tick[1], self.now())), CanaryDecision.from_json)

        return self._read(read)

    def canary_history(self, service: str, since: float | None = None) -> Decisions | SourceError:
        """As EngineSource.canary_history, from the store."""
        return self._read(lambda store: _typed(answers.canary_history_items(
            store.canary_history(service, since=since, limit=answers.HISTORY_LIMIT), evidence=False),
            CanaryDecision.from_json))

    def status(self) -> Status | SourceError:
        def read(store: Store) -> Status:
            tick, now = store.latest_tick(), self.now()
            at = None if tick is None else tick[1]
            body, _ = answers.readiness(answers.evaluation_state(at, self._stale(at, now), now), None)
            return Status.from_readyz(body, time.monotonic())

        return self._read(read)

    def maintenance(self, since: float, until: float) -> Maintenance | SourceError:
        """As EngineSource.maintenance, from the store and the planned windows given."""
        def read(store: Store) -> Maintenance:
            body = maintenance_api.listing(self.planned, store.maintenance_records(), self.now(), since, until)
            return from_listing(answers.jsonable(body))

        return self._read(read)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def _stale(self, evaluated_at: float | None, now: float) -> bool:
        return evaluated_at is None or now - evaluated_at > self.stale_after

    def _read(self, read: Callable[[Store], T]) -> T | SourceError:
        try:
            store = self._open()
            return store if isinstance(store, SourceError) else read(store)
        except (StoreError, ValueError) as exc:
            return SourceError("store", f"cannot read {self.description}: {exc}")

    def _open(self) -> Store | SourceError:
        with self._lock:
            if self._store is None:
                if not os.path.isfile(self.path):
                    return SourceError("store", f"{self.description} does not exist (yet): "
                                                "is the engine running with --store on this path?")
                self._store = Store(self.path)
            return self._store


def _typed(items: list[dict], read: Callable[[Mapping], T]) -> list[Evaluated[T]]:
    """The store's answer typed through the API's JSON, as EngineSource types the engine's:
    nulls for NaN, times to the microsecond, so both sources give the same results."""
    return typed(answers.jsonable(items), read)


# --- sharing reads between callbacks --------------------------------------------------------


class TTLCache:
    """Values computed at most once per `ttl` seconds per key, errors included (an unreachable
    engine is not asked again by every callback). While one caller computes a key, the others
    wait for its result instead of all asking at once. One per process: each gunicorn worker
    has its own."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, Any]] = {}  # key -> (expires at, value)
        self._computing: dict[str, threading.Lock] = {}

    def get(self, key: str, compute: Callable[[], T]) -> T:
        with self._lock:
            hit = self._fresh(key)
            if hit is not None:
                return hit[1]
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:
            with self._lock:
                hit = self._fresh(key)  # computed by another caller while this one waited
                if hit is not None:
                    return hit[1]
            value = compute()
            with self._lock:
                self._values[key] = (self.clock() + self.ttl, value)
            return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def _fresh(self, key: str) -> tuple[float, Any] | None:
        hit = self._values.get(key)
        return hit if hit is not None and self.clock() < hit[0] else None


class CachedSource:
    """A source whose reads are shared through a TTLCache by every callback of the app.

    The big answers (SLOs and canaries: megabytes at 1,000 services) are also kept
    past the TTL while the engine's latest evaluation is the one they came from: when the
    cache expires, the small status answer tells whether to read them again. So they are
    read once per evaluation (the engine's tick), not once per TTL.
    """

    def __init__(self, source: Source, ttl: float = DEFAULT_TTL, cache: TTLCache | None = None):
        self.source = source
        self.description = source.description
        self.cache = cache or TTLCache(ttl)
        self._kept: dict[str, tuple[tuple, Any]] = {}  # key -> (evaluation, answer)

    def slos(self) -> SLOs | SourceError:
        return self._per_evaluation("slos", self.source.slos)

    def canaries(self) -> Decisions | SourceError:
        return self._per_evaluation("canaries", self.source.canaries)

    def canary_history(self, service: str, since: float | None = None) -> Decisions | SourceError:
        """The service's whole bounded log is read once per evaluation and cut at `since` here:
        the newest N since a time are the newest N overall cut there, and a key per `since`
        (which moves with the clock) would never be reused and would pile up in the cache."""
        log = self._per_evaluation(f"canary_history {service}", lambda: self.source.canary_history(service))
        if isinstance(log, SourceError) or since is None:
            return log
        return [d for d in log if d.evaluated_at >= since]

    def status(self) -> Status | SourceError:
        return self.cache.get("status", self.source.status)

    def maintenance(self, since: float, until: float) -> Maintenance | SourceError:
        """The windows are read over the widest range a page shows (MAINTENANCE_BACK to
        MAINTENANCE_AHEAD around now, hour-aligned) once per TTL and cut to [since, until) here,
        as canary_history is; a range outside it is read as asked."""
        hour = math.floor(time.time() / 3600) * 3600
        wide = (hour - MAINTENANCE_BACK, hour + MAINTENANCE_AHEAD)
        read = self.cache.get("maintenance", lambda: (wide, self.source.maintenance(*wide)))
        (read_since, read_until), answer = read
        if not read_since <= since < until <= read_until:
            return self.source.maintenance(since, until)
        return answer if isinstance(answer, SourceError) else answer.between(since, until)

    def clear(self) -> None:
        """Forget everything: the next reads go to the source."""
        self.cache.clear()
        self._kept.clear()

    def _per_evaluation(self, key: str, read: Callable[[], T]) -> T:
        def compute() -> T:
            status = self.status()
            # stale is part of the evaluation's identity: the answers carry it on every item
            evaluation = (status.evaluated_at, status.stale) if isinstance(status, Status) else None
            kept = self._kept.get(key)
            if evaluation is not None and evaluation[0] is not None and kept is not None and kept[0] == evaluation:
                return kept[1]
            value = read()
            if evaluation is not None and not isinstance(value, SourceError):
                self._kept[key] = (evaluation, value)
            else:
                self._kept.pop(key, None)
            return value

        return self.cache.get(key, compute)

