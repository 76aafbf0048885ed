"""A test not marked `integration` cannot start a process, whichever way it tries (the guard
in conftest.py): `-m "not integration"` runs unit tests only."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pytest

from tests.conftest import StartsAProcess


def _fork() -> None:
    pid = os.fork()
    if pid == 0:  # only if the guard let it through: the child must not run the suite on
        os._exit(0)
    os.waitpid(pid, 0)


@pytest.mark.parametrize("start", [
    lambda: subprocess.Popen([sys.executable, "-c", "pass"]),
    lambda: subprocess.run([sys.executable, "-c", "pass"], check=False),
    lambda: multiprocessing.get_context("spawn").Process(target=print).start(),
    lambda: multiprocessing.get_context("forkserver").Process(target=print).start(),
    _fork,
    lambda: os.system("true"),
    lambda: os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], os.environ),
], ids=["Popen", "run", "spawn", "forkserver", "fork", "system", "posix_spawn"])
def test_a_unit_test_cannot_start_a_process(start):
    with pytest.raises(StartsAProcess, match="mark it integration"):
        start()
