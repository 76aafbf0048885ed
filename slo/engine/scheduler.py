"""The SLO engine: evaluates every SLO on a schedule, keeps the results, reports its health.

One APScheduler 3.x job runs `Engine.tick` every `interval`: `max_instances=1` and
`coalesce=True`, so ticks never overlap and a late one is not run twice. A tick is one
`slo.evaluate.evaluate` of the spec's plan (resolved once, when the engine is made) with
a deadline below the interval; it is stored whole or not at all. When Prometheus is down
or slow the engine keeps running: the failure is counted, the last snapshot stays and is
served as stale with its age, and the next tick recovers by itself.

Run the engine in one process only (under gunicorn each worker would start its own
scheduler); readers (the API, the dashboard) read its store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler

from slo import promql
from slo.engine.backend import Backend, BackendError
from slo.canary.collect import comparisons
from slo.canary.judge import judge
from slo.evaluate import Evaluation, TickTimeout, evaluate
from slo.plan import plan
from slo.results import CanaryDecision, Evaluated
from slo.spec import Spec
from slo.engine.store import Snapshot, Store

log = logging.getLogger(__name__)


@dataclass
class Health:
    """What the engine knows about its own ticks (exported as mcp_slo_engine_* metrics)."""

    started_at: float
    ticks: int = 0
    failures: int = 0
    timeouts: int = 0
    query_errors: int = 0
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_duration: float | None = None
    last_queries: int | None = None
    last_error: str | None = None  # of the last failed tick, cleared by a success
    consecutive_failures: int = 0


class Engine:
    def __init__(self, spec: Spec, backend: Backend, store: Store, *, interval: float = 30.0,
                 timeout: float | None = None, now: Callable[[], float] = time.time):
        if interval <= 0:
            raise ValueError("the interval must be positive")
        self.spec = spec
        self.plan = plan(spec)  # the spec resolved once: ticks read only the plan
        self.backend = backend
        self.store = store
        self.interval = interval
        # the tick's deadline: below the interval, so a slow Prometheus cannot make ticks pile up
        self.timeout = timeout if timeout is not None else 0.8 * interval
        self.now = now
        self.health = Health(started_at=now())
        self._lock = threading.Lock()  # one tick at a time, whoever calls it
        self._scheduler: BackgroundScheduler | None = None

    # --- ticks ---------------------------------------------------------------------------

    def tick(self) -> Evaluation | None:
        """Evaluate, store and account for one tick; never raises (a scheduler job must not)."""
        with self._lock:
            h = self.health
            h.ticks += 1
            h.last_attempt_at = started = self.now()
            began = time.monotonic()
            try:
                result = evaluate(self.backend, self.plan, started, deadline=self.timeout)
                decisions = self._judge_canaries(result.evaluated_at)
                result.meta["canaries"] = len(decisions)
                self.store.write_tick(result.evaluated_at, result.slos, result.tools, result.meta)
                for decision in decisions:
                    self.store.write_canary(result.evaluated_at, decision)
            except (BackendError, TickTimeout) as exc:
                h.failures += 1
                h.consecutive_failures += 1
                if isinstance(exc, TickTimeout) or getattr(exc, "kind", "") == "timeout":
                    h.timeouts += 1
                if isinstance(exc, BackendError):
                    h.query_errors += 1
                h.last_error = str(exc)
                log.warning("tick failed (%d in a row): %s", h.consecutive_failures, exc)
                return None
            except Exception as exc:  # a bug or a bad answer: keep the engine alive, say what happened
                h.failures += 1
                h.consecutive_failures += 1
                h.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("tick failed")
                return None
            finally:
                h.last_duration = time.monotonic() - began
            h.last_success_at = result.evaluated_at
            h.last_queries = result.meta.get("queries")
            h.last_error = None
            h.consecutive_failures = 0
            return result

    def _judge_canaries(self, at: float) -> list[CanaryDecision]:
        """Every canary's decision at `at` (queries may raise BackendError: the tick fails)."""
        out = []
        for pair, comparison in comparisons(self.backend, self.plan, at):
            d = judge(comparison)
            out.append(CanaryDecision(service=pair.service, baseline=pair.baseline, canary=pair.canary,
                                      verdict=d.verdict, score=d.score, reason=d.reason, metrics=d.metrics,
                                      window=promql.duration(pair.window), canary_age_seconds=pair.age))
        return out

    # --- schedule ------------------------------------------------------------------------

    def start(self) -> None:
        """Tick now, then every interval, in a background thread."""
        if self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True,
                                                      "misfire_grace_time": max(1, int(self.interval))})
        scheduler.add_job(self.tick, "interval", seconds=self.interval, id="tick",
                          next_run_time=_datetime(self.now()))
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    # --- reading -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot | None:
        return self.store.latest()

    def canaries(self, snapshot: Snapshot | None = None) -> list[Evaluated[CanaryDecision]]:
        """The canary decisions of the latest tick (older ones are history)."""
        snapshot = snapshot or self.snapshot()
        if snapshot is None:
            return []
        return [d for d in self.store.canary_latest() if d.evaluated_at == snapshot.evaluated_at]

    def stale_after(self) -> float:
        """A snapshot older than this many seconds is stale: two missed ticks."""
        return 2 * self.interval + self.timeout

    def is_stale(self, snapshot: Snapshot | None) -> bool:
        """Stale: two ticks in a row failed, or the snapshot is older than two missed ticks.
        One failed tick alone is not enough: a deploy gate that answered 503 on every
        transient timeout would count as failed checks in Flagger and roll releases back."""
        return self.is_stale_at(None if snapshot is None else snapshot.evaluated_at)

    def is_stale_at(self, evaluated_at: float | None) -> bool:
        """`is_stale` for a snapshot evaluated at `evaluated_at` (None: there is none)."""
        if evaluated_at is None:
            return True
        return self.now() - evaluated_at > self.stale_after() or self.health.consecutive_failures >= 2


def _datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
