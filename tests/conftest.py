"""Fixtures shared by the suite: the real local stack (demo services under load,
30 days of history, Prometheus, Alertmanager, the SLO engine) on free ports, started
once per session and stopped at the end with nothing left running."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator

import pytest

from demo.stack import Stack, StackConfig, default_alertmanager_config, start_stack
from tests import binaries
from tests.webhooks import Webhooks

DEMO_RECEIVERS = "http://127.0.0.1:9095"  # where examples/slo.yaml sends the alerts


def running_stack(tmp_path_factory, scenario: str, history_days: float, **overrides) -> Iterator[Stack]:
    """A demo stack under load (with the SLO engine) for the duration of a fixture."""
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        binaries.require(binary)
    for noisy in ("httpx", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    workdir = tmp_path_factory.mktemp(f"stack-{scenario}")
    # the demo's Alertmanager configuration, its receivers' URLs on a webhook server of ours:
    # `stack.webhooks` records what each receiver was sent
    hooks = Webhooks()
    am_config = workdir / "alertmanager.yml"
    am_config.write_text(default_alertmanager_config().read_text().replace(DEMO_RECEIVERS, hooks.url))
    settings = {"rate": 20.0, "scrape_interval": "1s", "seed": 42, "engine": True, "engine_interval": 5.0,
                "alertmanager_config": am_config, **overrides}
    config = StackConfig(workdir=workdir / "stack", scenario=scenario, history_days=history_days, **settings)
    try:
        stack = start_stack(config)
        stack.webhooks = hooks
        stack.start_load()
        try:
            yield stack
        finally:
            stack.close()
    finally:
        hooks.close()


@pytest.fixture(scope="session")
def regression_stack(tmp_path_factory) -> Iterator[Stack]:
    """The demo under the regression scenario with 30 days of history, and 2 hours before them:
    a 30d window then starts within it (the rules' first hourly sample of a series counts a
    whole hour at the rate of the minutes it saw)."""
    yield from running_stack(tmp_path_factory, "regression", 30 + 2 / 24)


@pytest.fixture(scope="session")
def healthy_stack(tmp_path_factory) -> Iterator[Stack]:
    """The demo under the healthy scenario with 30 days of history."""
    yield from running_stack(tmp_path_factory, "healthy", 30)


def pytest_collection_modifyitems(items):
    """Tests marked `late` watch a live incident of the session's demo stacks play out: they
    run last, when it is over, so their polling waits for nothing (a stable sort)."""
    items.sort(key=lambda item: item.get_closest_marker("late") is not None)


@pytest.fixture(scope="session", autouse=True)
def _stacks_first(request):
    """Start the session's demo stacks before the first test when the run uses them: their
    rules and alerts need a few minutes of evaluations, which then overlap other tests
    instead of being waited for by the first test that checks an alert."""
    used = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    global _starting_stacks
    _starting_stacks = True
    try:
        for name in STACKS:
            if name in used:
                request.getfixturevalue(name)
    finally:
        _starting_stacks = False


# --- a test that starts a process is marked `integration` ----------------------------------

STACKS = ("regression_stack", "healthy_stack")
_starting_stacks = False  # the session's stacks start in whichever test comes first


class StartsAProcess(AssertionError):
    pass


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _no_process_unless_integration(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _no_process_unless_integration(item):
        return (yield)


@contextlib.contextmanager
def _no_process_unless_integration(item):
    """Refuse every way of starting a process (subprocess.Popen, which asyncio uses too;
    multiprocessing's spawn and forkserver, through spawnv_passfds; os.fork, its fork; the
    os.spawn* and posix_spawn calls, os.system) in a test not marked `integration`, so
    `-m "not integration"` is a run of unit tests."""
    if item.get_closest_marker("integration") is not None:
        yield
        return
    if used := [name for name in STACKS if name in getattr(item, "fixturenames", ())]:
        raise StartsAProcess(f"{item.nodeid} uses {used[0]} (real processes): mark it integration")
    import multiprocessing.util

    def refusing(original):
        def refuse(*args, **kwargs):
            if not _starting_stacks:
                raise StartsAProcess(f"{item.nodeid} starts a process: mark it integration")
            return original(*args, **kwargs)
        return refuse

    targets = [(subprocess.Popen, "__init__"), (multiprocessing.util, "spawnv_passfds")]
    targets += [(os, name) for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "spawnv",
                                         "spawnve", "spawnvp", "spawnvpe") if hasattr(os, name)]
    originals = [(owner, name, getattr(owner, name)) for owner, name in targets]
    for owner, name, original in originals:
        setattr(owner, name, refusing(original))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


@pytest.fixture(scope="module")
def webhooks() -> Iterator[Webhooks]:
    """A webhook receiver recording what Alertmanager sends each receiver path."""
    hooks = Webhooks()
    yield hooks
    hooks.close()


# --- headless Chromium for the dashboard's browser tests (dash[testing]) ---------------------


def pytest_configure(config):
    if hasattr(config.option, "headless"):  # dash[testing] installed: never open a window
        config.option.headless = True


def pytest_setup_options():
    """Chromium's options for dash[testing]'s browser: Debian's binary, and none of its
    background connections (this machine's network is closed; CI's may be too)."""
    import shutil

    from selenium.webdriver.chrome.options import Options

    options = Options()
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--window-size=1600,1000"):
        options.add_argument(flag)
    return options
