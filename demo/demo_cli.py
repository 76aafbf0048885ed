"""`mcp-slo demo`: the demo services under load, with 30 days of history, a real
Prometheus and Alertmanager. Shows a line per start-up step, then one `NAME: URL` line per
endpoint and the URL to open first, and runs until Ctrl-C (or --exit-after)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path

import anyio
from rich.console import Console

from collector.command import FAILED, OK, CommandError
from demo import console
from demo.processes import MissingBinary
from demo.scenario import ScenarioError, available
from demo.stack import Stack, StackConfig, start_stack


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="healthy",
                        help=f"one of {', '.join(available())}, or a scenario YAML file (default healthy)")
    parser.add_argument("--workdir", type=Path, help="keep state here between runs (default: a temp dir)")
    parser.add_argument("--exit-after", type=float, metavar="SECONDS", help="stop everything cleanly after this long")
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second per service (default 20)")
    parser.add_argument("--prometheus-port", type=int, default=9090, help="0 picks a free port")
    parser.add_argument("--alertmanager-port", type=int, default=9093, help="0 picks a free port")
    parser.add_argument("--engine-port", type=int, default=8080, help="the SLO engine's API and /metrics (0: a free port)")
    parser.add_argument("--no-engine", dest="engine", action="store_false",
                        help="do not run the SLO engine (nor the dashboard)")
    parser.add_argument("--dashboard-port", type=int, default=8050, help="the dashboard (0: a free port)")
    parser.add_argument("--no-dashboard", dest="dashboard", action="store_false", help="do not serve the dashboard")
    parser.add_argument("--seed", type=int, help="random seed for reproducible load and history")
    parser.add_argument("--history-days", type=float, default=30.0,
                        help="days of history to backfill before starting (0: none)")
    parser.add_argument("--no-rule-backfill", dest="rule_backfill", action="store_false",
                        help="skip backfilling the series the rules would have recorded over the history "
                             "(a few seconds for 30 days): the SLO windows and charts then cover only the "
                             "time since the demo started")
    parser.add_argument("--verbose", action="store_true",
                        help="also log INFO records, the dashboard's HTTP access log among them "
                             "(default: warnings and errors only)")


def run(args: argparse.Namespace) -> int:
    if args.workdir:
        return _run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="mcp-slo-demo-") as tmp:
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, workdir: Path) -> int:
    screen = Console()
    console.configure_logging(screen, args.verbose)
    config = StackConfig(
        workdir=workdir, scenario=args.scenario, rate=args.rate, history_days=args.history_days,
        prometheus_port=args.prometheus_port, alertmanager_port=args.alertmanager_port, seed=args.seed,
        backfill_rules=args.rule_backfill, engine=args.engine, engine_port=args.engine_port,
        dashboard=args.engine and args.dashboard, dashboard_port=args.dashboard_port,
    )
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    # Until the event loop takes over signals, SIGTERM stops us like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with console.start_up(screen) as progress:
            stack = start_stack(config, progress)
    except KeyboardInterrupt:
        say("demo stopped")  # start_stack has stopped what it started
        return OK
    except (MissingBinary, ScenarioError) as exc:
        raise CommandError(str(exc)) from None
    except RuntimeError as exc:  # a process of the stack failed
        raise CommandError(str(exc), FAILED) from None
    stop_request = _StopRequest()
    try:
        # From here a signal only sets a flag: see _StopRequest.
        signal.signal(signal.SIGINT, stop_request)
        signal.signal(signal.SIGTERM, stop_request)
        for name, url in stack.endpoints():
            say(f"{name}: {url}")
        say(open_first(stack, args.exit_after))
        anyio.run(_serve, stack, args, stop_request)
    except KeyboardInterrupt:
        pass
    finally:
        # Stopping: a late or second Ctrl-C must not cut the clean-up short (and escape as a
        # KeyboardInterrupt); the children die with us anyway (PR_SET_PDEATHSIG).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.close()
    say("demo stopped")
    return OK


def open_first(stack: Stack, exit_after: float | None) -> str:
    """Where to look first (the dashboard's overview, else Prometheus's alerts) and how to stop.
    Not a `NAME: URL` line: whatever reads those must not take it for an endpoint."""
    url, what = ((f"{stack.dashboard_url}/", "the SLO overview") if stack.dashboard_url
                 else (f"{stack.prometheus_url}/alerts", "the SLO alerts in Prometheus"))
    stop = f"it stops after {exit_after:g} s, or on Ctrl-C" if exit_after is not None else "Ctrl-C stops it"
    return f"Open {url} first ({what}); {stop}."


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


class _StopRequest:
    """The signal handler once the stack runs: Ctrl-C or SIGTERM sets a flag and wakes the
    event loop. Raising KeyboardInterrupt instead can lose the signal: Python ignores an
    exception raised in a weakref callback or __del__, where a signal may land."""

    def __init__(self) -> None:
        self.requested = False
        self._wake: tuple[asyncio.AbstractEventLoop, anyio.Event] | None = None

    def __call__(self, _signum, _frame) -> None:
        self.requested = True
        if self._wake is not None:
            loop, event = self._wake
            if not loop.is_closed():  # a late signal, after the loop ended, has nothing to wake
                loop.call_soon_threadsafe(event.set)

    def wake(self, event: anyio.Event) -> None:
        """Set `event` on the next signal, or now if one came already."""
        self._wake = (asyncio.get_running_loop(), event)
        if self.requested:
            event.set()


async def _serve(stack: Stack, args: argparse.Namespace, stop_request: _StopRequest) -> None:
    stop = anyio.Event()
    stop_request.wake(stop)
    async with anyio.create_task_group() as tg:
        if args.exit_after is not None:
            tg.start_soon(_stop_after, stop, args.exit_after)
        tg.start_soon(stack.drive, stop)
        await stop.wait()
        tg.cancel_scope.cancel()


async def _stop_after(stop: anyio.Event, seconds: float) -> None:
    await anyio.sleep(seconds)
    stop.set()
