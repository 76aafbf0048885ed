"""The engine's read-only HTTP API (Starlette), and its /metrics.

    GET /api/v1/slos                 every SLO of the latest tick (?status=critical&service=fs)
    GET /api/v1/slos/{service}       one service's SLOs (404 if the engine does not know it)
    GET /api/v1/services             services with their versions, SLO count and worst status
    GET /api/v1/canaries             every canary's latest decision (verdict, score, evidence)
    GET /api/v1/canaries/{service}   one service's canaries
    GET /api/v1/canaries/{service}/history
                                     its decisions, oldest first: the newest HISTORY_LIMIT (1,000)
                                     since ?since= (RFC 3339 or unix seconds; default: all kept);
                                     ?evidence=false leaves out the per-test evidence (`metrics`)
    GET /api/v1/canaries/{service}/verdict
                                     the service's verdict over its canaries, 200 whatever it is
                                     (promote, rollback, inconclusive; inconclusive too when no
                                     canary has traffic yet): 503 only when stale, 404 when the
                                     engine knows no such service (for Argo Rollouts' web metrics,
                                     which take any other status for an error)
    GET|POST /api/v1/gate/{service}  200 only for promote: 409 rollback, 425 inconclusive,
                                     404 no canary, 503 stale (a deploy gate: Flagger's
                                     confirm-promotion webhook); ?pass=promote,inconclusive
                                     answers 200 for those verdicts (Flagger's rollout webhook,
                                     which fails only on a rollback)
                                     Under `error_budget_policy: freeze` with a budget exhausted,
                                     both gates and the verdict answer verdict "frozen" (the gate
                                     423, whatever ?pass= says) unless the canary is to roll back
                                     or the release is a fix: ?fix=true or the header
                                     `X-MCP-SLO-Release: fix` (slo.engine.freeze)
    GET|POST /api/v1/maintenance     maintenance windows: list, start; POST|DELETE
                                     /api/v1/maintenance/{id} ends one (slo.engine.maintenance_api)
    GET /healthz                     200 while the process serves
    GET /readyz                      200 once a fresh snapshot exists, 503 otherwise (with why)
    GET /metrics                     the engine's metrics (slo.engine.metrics)

Every answer comes from the store (its latest snapshot, or the canary decision log): no
request reaches Prometheus. Each SLO object carries `stale` (two ticks in a row failed, or
the snapshot is older than two missed ticks) and `evaluated_at` (RFC 3339). JSON never
holds NaN: unknown numbers are null.
"""

from __future__ import annotations

import json
import logging
import threading

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.command import host_port
from slo.engine import freeze
from slo.engine import maintenance_api
from slo.engine.answers import (GATE_STATUS, HISTORY_LIMIT, VERDICTS, canary_history_items, canary_items,
                                evaluation_state, jsonable, parse_time, readiness, service_items, service_verdict,
                                slo_items)
from slo.engine.metrics import registry_for
from slo.engine.scheduler import Engine
from slo.engine.store import Snapshot, StoreError
from slo.evaluate import STATUS_CODES, STATUSES
from slo.results import CanaryDecision, Evaluated

log = logging.getLogger(__name__)


def json_response(body, status: int = 200) -> Response:
    return Response(_dumps(body), status_code=status, media_type="application/json")


class _Latest:
    """The latest snapshot, read from the store once per tick rather than once per request
    (parsing a tick of 1,000 services takes tens of ms), and the whole SLO list's JSON kept
    per tick and staleness: the dashboard of every viewer asks for exactly that."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._tick: tuple[int, float] | None = None
        self._snapshot: Snapshot | None = None
        self._body: tuple[bool, bytes] | None = None

    def snapshot(self) -> Snapshot | None:
        tick = self.engine.store.latest_tick()
        with self._lock:
            if tick is None or tick != self._tick:
                snapshot = self.engine.snapshot()
                self._tick = None if snapshot is None else (snapshot.tick_id, snapshot.evaluated_at)
                self._snapshot, self._body = snapshot, None
            return self._snapshot

    def slos_body(self, items: list[dict], stale: bool) -> bytes:
        with self._lock:
            if self._body is None or self._body[0] != stale:
                self._body = (stale, _dumps(items))
            return self._body[1]

    def state(self) -> dict:
        """slo_items' state of the latest tick, from its time alone (for /readyz)."""
        tick = self.engine.store.latest_tick()
        at = None if tick is None else tick[1]
        return evaluation_state(at, self.engine.is_stale_at(at), self.engine.now())


def _dumps(body) -> bytes:
    return json.dumps(jsonable(body), allow_nan=False).encode()


def create_app(engine: Engine) -> Starlette:
    registry = registry_for(engine)
    latest = _Latest(engine)

    def current() -> tuple[list[dict], dict]:
        snapshot = latest.snapshot()
        return slo_items(snapshot, engine.is_stale(snapshot), engine.now())

    async def slos(request: Request) -> Response:
        items, state = current()
        wanted_status = request.query_params.get("status")
        if wanted_status is not None and wanted_status not in STATUSES:
            return json_response({"error": f"unknown status {wanted_status!r}; one of {', '.join(STATUSES)}"}, 400)
        service = request.query_params.get("service")
        if not wanted_status and not service:
            return Response(latest.slos_body(items, state["stale"]), media_type="application/json")
        if wanted_status:
            items = [r for r in items if r["status"] == wanted_status]
        if service:
            items = [r for r in items if r["service"] == service]
        return json_response(items)

    async def service_slos(request: Request) -> Response:
        name = request.path_params["service"]
        items = [r for r in current()[0] if r["service"] == name]
        if not items:
            return json_response({"error": f"no service {name!r} in the latest evaluation"}, 404)
        return json_response(items)

    async def services(request: Request) -> Response:
        return json_response(service_items(current()[0]))

    def canaries_now(service: str | None = None) -> tuple[Snapshot | None, bool, list[Evaluated[CanaryDecision]]]:
        """The latest snapshot, whether it is stale, and its canary decisions (of `service`)."""
        snapshot = latest.snapshot()
        decisions = [d for d in engine.canaries(snapshot) if service is None or d.result.service == service]
        return snapshot, engine.is_stale(snapshot), decisions

    async def canaries(request: Request) -> Response:
        _, stale, decisions = canaries_now()
        return json_response(canary_items(decisions, stale))

    async def service_canaries(request: Request) -> Response:
        name = request.path_params["service"]
        _, stale, decisions = canaries_now(name)
        if not decisions:
            return json_response({"error": f"no canary of {name!r} in the latest evaluation"}, 404)
        return json_response(canary_items(decisions, stale))

    async def canary_history(request: Request) -> Response:
        name = request.path_params["service"]
        since, evidence = request.query_params.get("since"), request.query_params.get("evidence", "true")
        if evidence not in ("true", "false"):
            return json_response({"error": f"evidence is true or false, not {evidence!r}"}, 400)
        try:
            # answers give times to the microsecond, rounded: one passed back as `since` must
            # still find its own decision
            start = parse_time(since) - 1e-6 if since is not None else None
        except ValueError as exc:
            return json_response({"error": f"since: {exc}"}, 400)
        # an unknown service (or none judged since) is an empty log, not an error: canaries come and go
        decisions = engine.store.canary_history(name, since=start, limit=HISTORY_LIMIT)
        return json_response(canary_history_items(decisions, evidence == "true"))

    def verdict_of(name: str, fix: bool) -> tuple[dict, int | None]:
        """The body every gate answers for service `name`, and its status when there is no
        verdict to give: 503 (no evaluation, or a stale one), 404 (the latest evaluation has
        no such service). A service without canary traffic (yet) is inconclusive. Under a
        release freeze the verdict is "frozen" unless it is rollback or `fix` is set."""
        snapshot, stale, decisions = canaries_now(name)
        body = {"service": name, "canaries": canary_items(decisions, stale)}
        if snapshot is None or stale:
            why = f": {engine.health.last_error}" if engine.health.last_error else ""
            what = "has no evaluation yet" if snapshot is None else "'s latest evaluation is stale"
            return {**body, "verdict": None, "reason": f"the engine{what}{why}"}, 503
        if decisions:
            verdict, reason = service_verdict([d.result for d in decisions])
        elif any(r.service == name for r in snapshot.results):
            verdict, reason = "inconclusive", f"no canary of {name!r} with traffic yet"
        else:
            return {**body, "verdict": None, "reason": f"no service {name!r} in the latest evaluation"}, 404
        return freeze.apply({**body, "verdict": verdict, "reason": reason},
                            freeze.freeze_of(engine.spec, name, snapshot.results), fix), None

    def fix_of(request: Request) -> bool | Response:
        """Whether the request marks a fix release, or the 400 answer to a bad mark."""
        try:
            return freeze.fix_requested(request.query_params, request.headers)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)

    async def canary_verdict(request: Request) -> Response:
        """For Argo Rollouts' web metric: 200 with the verdict whatever it is, so that its
        conditions read it (any other status is a measurement error)."""
        fix = fix_of(request)
        if isinstance(fix, Response):
            return fix
        body, status = verdict_of(request.path_params["service"], fix)
        return json_response(body, status or 200)

    async def gate(request: Request) -> Response:
        """For Flagger's webhooks (and any tool that reads only the status): 200 only when the
        verdict is one `?pass=` names (default: promote) on fresh data; otherwise non-2xx."""
        name = request.path_params["service"]
        passing = set(request.query_params.get("pass", "promote").split(","))
        if not passing <= set(VERDICTS):
            return json_response({"error": f"pass takes verdicts ({', '.join(VERDICTS)}), comma-separated; "
                                           f"got {request.query_params['pass']!r}"}, 400)
        fix = fix_of(request)
        if isinstance(fix, Response):
            return fix
        body, status = verdict_of(name, fix)
        if body["verdict"] == "frozen":
            status = freeze.FROZEN_STATUS  # whatever ?pass= says: a freeze refuses the release
        if status is None and not body["canaries"] and "inconclusive" not in passing:
            status = 404  # no canary to promote, as the gate has always answered
            body = {**body, "verdict": None, "reason": f"no canary of {name!r}"}
        if status is None:
            status = 200 if body["verdict"] in passing else GATE_STATUS[body["verdict"]]
        return json_response(body, status)

    async def healthz(request: Request) -> Response:
        h = engine.health
        return json_response({"status": "ok", "ticks": h.ticks, "failures": h.failures,
                              "last_error": h.last_error})

    async def readyz(request: Request) -> Response:
        return json_response(*readiness(latest.state(), engine.health.last_error))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def unreadable(request: Request, exc: Exception) -> Response:
        """A store row that does not read as a result: one line for the client and the log."""
        log.error("%s: %s", request.url.path, exc)
        return json_response({"error": f"the engine's store cannot be read: {exc}"}, 500)

    app = Starlette(routes=[
        Route("/api/v1/slos", slos),
        Route("/api/v1/slos/{service:path}", service_slos),
        Route("/api/v1/services", services),
        Route("/api/v1/canaries", canaries),
        # before the next route, whose {service:path} would take "fs/history" for a name
        Route("/api/v1/canaries/{service:path}/history", canary_history),
        Route("/api/v1/canaries/{service:path}/verdict", canary_verdict),
        Route("/api/v1/canaries/{service:path}", service_canaries),
        Route("/api/v1/gate/{service:path}", gate, methods=["GET", "POST"]),  # Flagger's webhooks POST
        *maintenance_api.routes(engine),  # GET, POST /api/v1/maintenance; POST|DELETE .../{id}
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ], exception_handlers={StoreError: unreadable})
    app.state.engine = engine
    app.state.status_codes = STATUS_CODES
    return app


class BackgroundServer:
    """The API served by uvicorn in a thread (the demo, tests); `stop()` ends it."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0):
        import socket
        import threading

        import uvicorn

        # bind first, so port 0 works and the port is known before anything scrapes it
        self.socket = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        # as uvicorn sets on the sockets it binds itself: without it, a kept-alive client
        # waits ~40 ms per request for delayed ACKs (accepted sockets inherit the option)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host, self.port = self.socket.getsockname()[:2]
        self.url = f"http://{host_port(self.host, self.port)}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="mcp-slo-api", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()

