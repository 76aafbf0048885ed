"""The SLO engine: evaluates every SLO on a schedule, keeps the results, reports its health.

One APScheduler 3.x job runs `Engine.tick` every `interval`: `max_instances=1` and
`coalesce=True`, so ticks never overlap and a late one is not run twice. A tick is one
`slo.evaluate.evaluate` of the spec's plan (resolved once, when the engine is made) with
a deadline below the interval; it is stored whole or not at all. When Prometheus is down
or slow the engine keeps running: the failure is counted, the last snapshot stays and is
served as stale with its age, and the next tick recovers by itself.

`Engine.judge_history` judges the canaries at past instants as the ticks would have (the
same queries, evaluated by Prometheus at those times), so the decision log covers a
canary's life from before the engine ran: once in the background at start with
`judge_history=` seconds (`mcp-slo engine --judge-history 24h`), or called directly.

Run the engine in one process only (under gunicorn each worker would start its own
scheduler); readers (the API, the dashboard) read its store.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler

from slo import exclusion, promql
from slo.engine.backend import Backend, BackendError
from slo.canary.collect import comparisons, find_pairs
from slo.canary.judge import judge
from slo.evaluate import Evaluation, TickTimeout, evaluate
from slo.maintenance import Window, active
from slo.plan import plan
from slo.results import CanaryDecision, Evaluated
from slo.spec import Spec
from slo.engine.store import Snapshot, Store

log = logging.getLogger(__name__)

# judge_history's past instants: every HISTORY_STEP seconds (the canary age's resolution at
# the default 24h lookback), or a multiple of it so a call judges at most HISTORY_INSTANTS.
HISTORY_STEP = 300.0
HISTORY_INSTANTS = 150


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
    history_decisions: int | None = None  # written by judging the past at start, once it is done


class Engine:
    def __init__(self, spec: Spec, backend: Backend, store: Store, *, interval: float = 30.0,
                 timeout: float | None = None, now: Callable[[], float] = time.time,
                 judge_history: float = 0.0, alertmanager: str | None = None):
        """`judge_history`: seconds of the canaries' past that `start` judges, once, in the
        background (0: none). `alertmanager`: its URL, where run-time maintenance windows
        get their silences (slo.engine.maintenance_api); None: no silences."""
        if interval <= 0:
            raise ValueError("the interval must be positive")
        if not judge_history >= 0:
            raise ValueError("the history to judge must be zero or more seconds")
        self.spec = spec
        self.plan = plan(spec)  # the spec resolved once: ticks read only the plan
        self.backend = backend
        self.store = store
        self.interval = interval
        # the tick's deadline: below the interval, so a slow Prometheus cannot make ticks pile up
        self.timeout = timeout if timeout is not None else 0.8 * interval
        self.now = now
        self.history_seconds = judge_history
        self.alertmanager = alertmanager
        self.health = Health(started_at=now())
        self._lock = threading.Lock()  # one tick at a time, whoever calls it
        self._history_lock = threading.Lock()  # one judge_history at a time: each sees what the last wrote
        self._stopping = threading.Event()  # ends a judge_history in the background
        self._scheduler: BackgroundScheduler | None = None
        self._excluded = exclusion.Cache()  # the counts of exclude intervals over, across ticks

    # --- ticks ---------------------------------------------------------------------------

    def tick(self) -> Evaluation | None:
        """Evaluate, store and account for one tick; never raises (a scheduler job must not)."""
        with self._lock:
            h = self.health
            h.ticks += 1
            h.last_attempt_at = started = self.now()
            began = time.monotonic()
            try:
                result = evaluate(self.backend, self.plan, started, deadline=self.timeout,
                                  maintenance=self.maintenance_windows(started), excluded_cache=self._excluded)
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

    # --- the past ------------------------------------------------------------------------

    def judge_history(self, since: float, until: float | None = None, step: float | None = None) -> int:
        """Judge the canaries at past instants as the ticks would have, and log each decision
        at its instant; returns how many decisions were written.

        The instants are the canaries' start (their first sample, as a tick at `until` finds
        it) plus one step, two, ... from `since` on, up to half a step before `until` (default
        now; the rest is the live ticks'). `step` defaults to 5 min, or a multiple of it so
        there are at most 150 instants. An instant with a logged decision within half a step
        is skipped: the engine judged then already, and a second call writes nothing new.
        Each instant costs what a tick's canaries cost (their queries, at that time), under
        the tick lock so live ticks wait at most one instant. A failed query ends the call
        (logged): a later call judges what is left.
        """
        with self._history_lock:
            return self._judge_history(since, self.now() if until is None else until, step)[0]

    def _judge_history(self, since: float, until: float, step: float | None) -> tuple[int, bool]:
        """judge_history: the decisions written, and False when a failed query cut it short."""
        began = time.monotonic()
        try:
            with self._lock:
                found = find_pairs(self.backend, self.spec, until)
        except BackendError as exc:
            log.warning("judging the canaries' past: cannot find them: %s", exc)
            return 0, False
        if not found:
            return 0, True
        born = until - max(p.age for p in found)  # the oldest canary's first sample
        step = history_step(max(born, since), until) if step is None else step
        instants = history_instants(born, since, until, step)
        if not instants:
            return 0, True
        half = step / 2
        judged = self.store.canary_times(instants[0] - half, instants[-1] + half)
        written = done = skipped = 0
        complete = True
        for at in instants:
            if self._stopping.is_set():
                complete = False
                break
            if _near(judged, at, half):
                skipped += 1
                continue
            with self._lock:
                try:
                    decisions = self._judge_canaries(at)
                except BackendError as exc:
                    log.warning("judging the canaries' past stopped at %s: %s", _datetime(at).isoformat(), exc)
                    complete = False
                    break
                for decision in decisions:
                    self.store.write_canary(at, decision)
            written += len(decisions)
            done += 1
        log.info("judged the canaries at %d past instants every %s since %s (%d already judged): "
                 "%d decisions in %.1fs", done, promql.duration(step),
                 _datetime(instants[0]).isoformat(timespec="seconds"), skipped, written,
                 time.monotonic() - began)
        return written, complete

    # --- schedule ------------------------------------------------------------------------

    def start(self) -> None:
        """Tick now, then every interval, in a background thread; judge the canaries' past
        (the constructor's `judge_history`) once, alongside."""
        if self._scheduler is not None:
            return
        self._stopping.clear()
        scheduler = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True,
                                                      "misfire_grace_time": max(1, int(self.interval))})
        now = self.now()
        scheduler.add_job(self.tick, "interval", seconds=self.interval, id="tick", next_run_time=_datetime(now))
        if self.history_seconds > 0:
            scheduler.add_job(self._judge_history_at_start, "date", args=(now - self.history_seconds, now),
                              id="judge-history", misfire_grace_time=None)  # at once
        self._scheduler = scheduler  # before it runs: the job above may reschedule itself
        scheduler.start()

    def _judge_history_at_start(self, since: float, until: float, written: int = 0) -> None:
        """start's judging of the past; cut short by a failed query, it runs again an interval
        later (what it judged is skipped), as the ticks recover by themselves."""
        with self._history_lock:
            more, complete = self._judge_history(since, until, None)
        scheduler = self._scheduler
        if complete:
            self.health.history_decisions = written + more
        elif scheduler is not None and not self._stopping.is_set():
            scheduler.add_job(self._judge_history_at_start, "date", args=(since, until, written + more),
                              id="judge-history", replace_existing=True, misfire_grace_time=None,
                              run_date=_datetime(time.time() + self.interval))  # the scheduler's clock

    def stop(self) -> None:
        if self._scheduler is not None:
            self._stopping.set()
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    # --- reading -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot | None:
        return self.store.latest()

    def maintenance(self, at: float | None = None) -> list[Window]:
        """The maintenance windows on at `at` (default now): the spec's planned ones and the
        run-time ones kept in the store."""
        at = self.now() if at is None else at
        return active(self.spec.maintenance, at) + [r.window() for r in self.store.maintenance_records(active_at=at)]

    def maintenance_windows(self, at: float) -> list[Window]:
        """The windows a tick at `at` applies: the spec's planned ones, and the run-time ones
        kept in the store that overlap the tick's longest window (a record ended before it
        started has no time to leave out)."""
        since = at - max(self.plan.windows)
        kept = [r.window() for r in self.store.maintenance_records()
                if r.until > r.starts_at and r.until > since and r.starts_at < at]
        return [*self.spec.maintenance, *kept]

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


def history_step(start: float, until: float) -> float:
    """judge_history's default step from `start` to `until`: HISTORY_STEP, or the smallest
    multiple of it that makes at most HISTORY_INSTANTS instants."""
    return HISTORY_STEP * max(1, math.ceil((until - start) / (HISTORY_INSTANTS * HISTORY_STEP)))


def history_instants(born: float, since: float, until: float, step: float) -> list[float]:
    """The past instants `Engine.judge_history` judges: `born` plus whole steps, from `since`
    on, up to half a step before `until`."""
    if not step > 0:
        raise ValueError(f"the step must be a positive number of seconds, not {step!r}")
    first = max(1, math.ceil((since - born) / step))
    last = math.floor((until - step / 2 - born) / step)
    return [born + k * step for k in range(first, last + 1)]


def _near(times: list[float], at: float, within: float) -> bool:
    """Whether sorted `times` hold one less than `within` from `at`."""
    i = bisect.bisect_left(times, at - within)
    return i < len(times) and times[i] < at + within


def _datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
