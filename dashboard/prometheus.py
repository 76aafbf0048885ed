"""Prometheus and Alertmanager for the dashboard's charts and alert lists.

The overview never comes here: it reads the engine's snapshot. The service, canary and
alert pages do, through one `Metrics` per app:

- `range(expr, start, end)`: a range query whose step keeps it at MAX_POINTS points or
  fewer (a 30-day chart is 720 hourly points, not 170,000 at 15 s), or at the step given;
- `instant(expr)`: an instant query;
- `exemplars(expr, start, end)`: the exemplars (trace ids) scraped with `expr`'s series
  (GET /api/v1/query_exemplars); none from a Prometheus without exemplar storage;
- `alerts()`: Prometheus's firing and pending alerts (GET /api/v1/alerts);
- `alertmanager_alerts()`: what Alertmanager holds (GET /api/v2/alerts), with receivers
  and silences.

Every read is shared for a few seconds by all callbacks (TTLCache, keyed by the query and
the time range rounded to the step, so two viewers of the same chart share one query) and
returns a SourceError instead of raising: a chart says "Prometheus unreachable" and the
rest of the page still renders. Queries go through slo.engine.backend.Backend (bounded time and
retries, credentials never logged); label values in PromQL must come from slo.promql's
escaping helpers.

Prometheus and Alertmanager are reached as the engine reaches Prometheus: one
slo.engine.backend.BackendOptions (the engine's --header, --basic-auth-user, --bearer-token-env,
--ca-file, --insecure-skip-verify) gives the headers, credentials and TLS settings of every
read, the alert lists' and the exemplars' too (which Backend does not read).
"""

from __future__ import annotations

import math
import os
import ssl
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import httpx

from dashboard.source import DEFAULT_TTL, SourceError, TTLCache, display_url
from slo import schema
from slo.engine.backend import Backend, BackendError, BackendOptions
from slo.query import Sample, Series

T = TypeVar("T")

MAX_POINTS = 1000  # per series and chart
MIN_STEP = 15.0  # seconds: below Prometheus's usual scrape interval a chart gains nothing
NICE_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
TIMEOUT = 8.0  # seconds per query: a chart waits for it


class Exemplar(NamedTuple):
    """One exemplar Prometheus kept: an observation the exporter linked to its trace."""

    series: dict[str, str]  # the labels of the series it came with (a bucket: service, tool, le, ...)
    labels: dict[str, str]  # its own: trace_id, span_id
    value: float  # what was observed (a duration, in seconds)
    time: float  # Unix seconds


def step_for(span: float, max_points: int = MAX_POINTS) -> float:
    """The smallest round step (15 s, 30 s, 1 min, ... 1 d) giving at most `max_points`
    points over `span` seconds."""
    if not span > 0:
        return MIN_STEP
    needed = span / max(1, max_points - 1)
    return float(next((s for s in NICE_STEPS if s >= needed), math.ceil(needed / 86400) * 86400))


class Metrics:
    """The pages' reads from Prometheus (and Alertmanager, when configured)."""

    def __init__(self, prometheus_url: str | None, alertmanager_url: str | None = None, *,
                 ttl: float = DEFAULT_TTL, timeout: float = TIMEOUT, clock: Callable[[], float] = time.time,
                 options: BackendOptions | None = None):
        """`options` says how to reach Prometheus (its URL, headers, credentials, TLS; then
        `prometheus_url` is not needed) and Alertmanager (the same but the URL). ValueError for
        options that cannot be used (a CA file that is not there)."""
        if options is None and prometheus_url:
            options = BackendOptions(prometheus_url, timeout=timeout, retries=0)
        self.options = options
        self.prometheus_url = options.url if options is not None else None  # without credentials
        self.alertmanager_url = alertmanager_url.rstrip("/") if alertmanager_url else None
        self.cache = TTLCache(ttl)
        self.clock = clock
        # which metrics the charts read (slo.schema): the spec's `metrics:` where the app has a spec
        self.schema = schema.AUTO
        self._backend = Backend(options) if options is not None else None
        self._http = http_client(options, timeout)

    @property
    def queries(self) -> int:
        """Queries sent to Prometheus so far (the benchmark counts them per view)."""
        return self._backend.queries if self._backend is not None else 0

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        self._http.close()

    # --- Prometheus ----------------------------------------------------------------------

    def range(self, expr: str, start: float, end: float, max_points: int = MAX_POINTS,
              step: float | None = None) -> list[Series] | SourceError:
        """`expr` from `start` to `end` (Unix seconds) at `step` (default: `step_for` the span);
        the range is aligned to the step, so viewers a few seconds apart share the cached answer."""
        step = step or step_for(end - start, max_points)
        end = math.floor(end / step) * step
        start = max(end - math.floor((end - start) / step) * step, 0.0)
        return self._prometheus(f"range {step} {start} {end} {expr}",
                                lambda backend: backend.query_range(expr, start, end, step))

    def instant(self, expr: str) -> list[Sample] | SourceError:
        return self._prometheus(f"instant {expr}", lambda backend: backend.query(expr))

    def exemplars(self, expr: str, start: float, end: float) -> list[Exemplar] | SourceError:
        """The exemplars of `expr`'s series from `start` to `end` (Unix seconds). Prometheus keeps
        them only with --enable-feature=exemplar-storage; without it the answer is an empty list."""
        if not self.prometheus_url:
            return SourceError("unconfigured", "no Prometheus configured (--prometheus)")

        def read() -> list[Exemplar] | SourceError:
            body = self._get_json(f"{self.prometheus_url.rstrip('/')}/api/v1/query_exemplars", "Prometheus",
                                  {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"})
            if isinstance(body, SourceError):
                return body
            found = exemplar_list(body.get("data") if isinstance(body, dict) else None)
            if found is None:
                return SourceError("bad_response", "Prometheus answered /api/v1/query_exemplars without a list")
            return found

        return self.cache.get(f"exemplars {start} {end} {expr}", read)

    def alerts(self) -> list[dict] | SourceError:
        """Prometheus's active alerts (firing and pending): labels, annotations, state, activeAt."""
        if not self.prometheus_url:
            return SourceError("unconfigured", "no Prometheus configured (--prometheus)")

        def read() -> list[dict] | SourceError:
            body = self._get_json(f"{self.prometheus_url.rstrip('/')}/api/v1/alerts", "Prometheus")
            if isinstance(body, SourceError):
                return body
            alerts = (body.get("data") or {}).get("alerts") if isinstance(body, dict) else None
            if not isinstance(alerts, list):
                return SourceError("bad_response", "Prometheus answered /api/v1/alerts without an alert list")
            return [a for a in alerts if isinstance(a, dict)]

        return self.cache.get("alerts", read)

    # --- Alertmanager -----------------------------------------------------------------------

    def alertmanager_alerts(self) -> list[dict] | SourceError:
        """Alertmanager's alerts (GET /api/v2/alerts): labels, annotations, status (state,
        silencedBy, inhibitedBy), receivers, startsAt."""
        if not self.alertmanager_url:
            return SourceError("unconfigured", "no Alertmanager configured (--alertmanager)")

        def read() -> list[dict] | SourceError:
            body = self._get_json(f"{self.alertmanager_url}/api/v2/alerts", "Alertmanager")
            if isinstance(body, SourceError):
                return body
            if not isinstance(body, list):
                return SourceError("bad_response", "Alertmanager answered /api/v2/alerts without an alert list")
            return [a for a in body if isinstance(a, dict)]

        return self.cache.get("alertmanager-alerts", read)

    # --- plumbing -------------------------------------------------------------------------------

    def _prometheus(self, key: str, read: Callable[[Backend], T]) -> T | SourceError:
        if self._backend is None:
            return SourceError("unconfigured", "no Prometheus configured (--prometheus)")
        backend = self._backend

        def compute() -> T | SourceError:
            try:
                return read(backend)
            except BackendError as exc:
                return SourceError("unreachable" if exc.kind in ("unreachable", "timeout") else "prometheus",
                                   str(exc))  # one line: what failed, the query, the URL; no credential
            except ValueError as exc:
                return SourceError("bad_request", str(exc))

        return self.cache.get(key, compute)

    def _get_json(self, url: str, who: str, params: dict[str, str] | None = None) -> Any:
        shown = display_url(url)
        try:
            response = self._http.get(url, params=params)
        except httpx.HTTPError as exc:
            return SourceError("unreachable", f"{who} at {shown} is unreachable ({type(exc).__name__})")
        if response.status_code != 200:
            hint = refused_hint(self.options) if response.status_code in (401, 403) else ""
            return SourceError("http", f"{who} at {shown} answered HTTP {response.status_code}{hint}")
        try:
            return response.json()
        except ValueError:
            return SourceError("bad_response", f"{who} at {shown} did not answer JSON")


def exemplar_list(data: Any) -> list[Exemplar] | None:
    """The exemplars in /api/v1/query_exemplars's `data` ([{seriesLabels, exemplars: [{labels,
    value, timestamp}]}]), None when it is not a list. An exemplar without a finite value or
    time is left out: it could not be drawn."""
    if not isinstance(data, list):
        return None
    out = []
    for series in data:
        if not isinstance(series, dict) or not isinstance(series.get("exemplars"), list):
            continue
        series_labels = _string_labels(series.get("seriesLabels"))
        for e in series["exemplars"]:
            if not isinstance(e, dict):
                continue
            try:
                value, at = float(e.get("value")), float(e.get("timestamp"))
            except (TypeError, ValueError):
                continue
            if math.isfinite(value) and math.isfinite(at):
                out.append(Exemplar(series_labels, _string_labels(e.get("labels")), value, at))
    return out


def _string_labels(labels: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


# --- credentials for the reads Backend does not make ------------------------------------------


class BearerFromEnv(httpx.Auth):
    """Authorization: Bearer <token>, the token read from the environment at each request, as
    slo.engine.backend does for queries (a rotated token is used at once; none while it is unset)."""

    def __init__(self, variable: str):
        self.variable = variable

    def auth_flow(self, request: httpx.Request):
        token = os.environ.get(self.variable, "").strip()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


def http_client(options: BackendOptions | None, timeout: float) -> httpx.Client:
    """A client for the alert lists sending what `options` says: its headers, its basic auth
    or bearer token, its TLS verification."""
    client = {"timeout": httpx.Timeout(timeout, connect=2.0)}
    if options is None:
        return httpx.Client(**client)
    auth = None
    if options.basic_auth is not None:
        auth = httpx.BasicAuth(*options.basic_auth)
    elif options.bearer_token_env:
        auth = BearerFromEnv(options.bearer_token_env)
    verify: ssl.SSLContext | bool = options.verify
    if options.ca_file:
        try:
            verify = ssl.create_default_context(cafile=options.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"--ca-file {options.ca_file}: cannot use it ({exc.strerror or exc})") from None
    return httpx.Client(**client, auth=auth, headers=dict(options.headers), verify=verify)


def refused_hint(options: BackendOptions | None) -> str:
    """Why a server may have refused a read (401, 403): the credentials the dashboard sent, or not."""
    variable = options.bearer_token_env if options is not None else None
    if variable and not os.environ.get(variable, "").strip():
        return f" (environment variable {variable}, the bearer token, is not set)"
    if options is None or (options.basic_auth is None and not variable and not options.headers):
        return " (no credentials were sent: see --bearer-token-env, --basic-auth-user, --header)"
    return " (the credentials or headers sent were refused)"
