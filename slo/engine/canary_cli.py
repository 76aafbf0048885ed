"""`mcp-slo canary`: a one-shot canary judgement for a CI pipeline.

    mcp-slo canary --service filesystem --prometheus http://127.0.0.1:9090 [--config SPEC]
                   [--baseline v1 --canary v2] [--fix]

Prints the verdict, the reason and the evidence table. Exit codes: 0 promote, 1 roll back
(or a release freeze), 3 inconclusive; 2 bad usage (a broken spec, no canary found,
Prometheus unreachable). Under the spec's `error_budget_policy: freeze`, a service with an
exhausted error budget (its SLOs evaluated now) exits 1 with the freeze's reason unless
`--fix` marks the release as a fix, which the canary's own verdict then decides
(slo.engine.freeze).
It lives in the engine service, not in the canary library (slo.canary), because it reads
Prometheus through the engine's backend.
"""

from __future__ import annotations

import argparse
import time

from collector.command import FAILED, INCONCLUSIVE, OK, CommandError
from slo import importers
from slo.canary.collect import comparisons
from slo.canary.judge import Decision, judge
from slo.engine.backend import Backend, BackendError, BackendOptions
from slo.engine.freeze import freeze_of
from slo.evaluate import evaluate
from slo.plan import plan
from slo.results import Effect, Side
from slo.spec import Spec, SpecError

EXIT = {"promote": OK, "rollback": FAILED, "inconclusive": INCONCLUSIVE}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", required=True, help="the service whose canary to judge")
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", metavar="URL")
    parser.add_argument("--config", metavar="SPEC", help="the SLO spec (canary settings, latency threshold)")
    parser.add_argument("--baseline", help="the baseline version (default: the spec's, or the busiest)")
    parser.add_argument("--canary", help="the canary version (default: every other version with traffic)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per query (default 30)")
    parser.add_argument("--fix", action="store_true",
                        help="the release is a fix: a release freeze (error_budget_policy: freeze) does not hold it")


def table(decision: Decision) -> str:
    rows = [("metric", "tool", "baseline", "canary", "effect [interval]", "p-value", "rollback at",
             "information", "result")]
    for m in decision.metrics:
        information = m.sequential.planned_information
        rows.append((m.name, m.tool or "(all)", _side(m.baseline), _side(m.canary), _effect(m.effect),
                     _number(m.sequential.p_value), _number(m.sequential.reject_at),
                     "-" if information is None else f"{min(information, 9.99):.0%}", m.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def _number(value) -> str:
    return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def _side(side: Side | None) -> str:
    """A version's column: its bad ratio and counts, or its request count."""
    if side is None:
        return "-"
    if side.ratio is not None:
        return f"{side.ratio:.3%} ({side.bad or 0:.0f}/{side.requests:.0f})"
    return f"{side.requests:.0f} requests"


def _effect(effect: Effect | None) -> str:
    if effect is None:
        return "-"
    name = "CLES" if effect.measure.startswith("CLES") else "x"
    return f"{name} {_number(effect.value)} [{_number(effect.low)}, {_number(effect.high)}]"


def run(args: argparse.Namespace) -> int:
    try:
        spec = importers.load(args.config).spec if args.config else Spec()
        backend = Backend(BackendOptions(url=args.prometheus, timeout=args.timeout, retries=1))
    except SpecError as exc:
        raise CommandError(f"invalid spec\n{exc}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    planned, now = plan(spec), time.time()
    try:
        baselines = {args.service: args.baseline} if args.baseline else None
        found = [(p, c) for p, c in comparisons(backend, planned, now, baselines=baselines)
                 if p.service == args.service and (args.canary is None or p.canary == args.canary)]
        # the SLOs are evaluated only when a freeze could hold the release
        frozen = freeze_of(spec, args.service, evaluate(backend, planned, now).slos) \
            if spec.error_budget_policy_for(args.service) == "freeze" else None
    except BackendError as exc:
        raise CommandError(str(exc)) from None
    if not found:
        raise CommandError(f"no canary of {args.service!r} with traffic in Prometheus at {args.prometheus}")
    verdicts = []
    for pair, comparison in found:
        d = judge(comparison)
        verdicts.append(d.verdict)
        print(f"{pair.service}: {pair.canary} against {pair.baseline} over the last {int(pair.window / 60)} min: "
              f"{d.verdict.upper()} (score {d.score})")
        print(f"  {d.reason}\n")
        print(table(d))
        print()
    worst = "rollback" if "rollback" in verdicts else "inconclusive" if "inconclusive" in verdicts else "promote"
    if frozen is not None:
        if args.fix:
            print(f"{args.service}: a fix release: the release freeze does not hold it ({frozen.explain('--fix')})")
        elif worst != "rollback":
            print(f"{args.service}: FROZEN: {frozen.explain('--fix')}")
            return FAILED
    return EXIT[worst]
