"""Command lines run inside the test process: the same code as the subprocess, without its ~7 s of
imports. Tests of what only a process shows (exit by signal, locks of a killed process, a console
script on PATH) keep running subprocesses."""

from __future__ import annotations

import runpy
import sys
import warnings

import pytest


def wsss_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """`wsss <argv>`: (exit code, stdout, stderr)."""
    from wsss.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stage_main(module: str, argv: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """`python -m <module> <argv>` (a stage's `__main__` block, e.g. `flows.prepare`): (exit code, stdout, stderr)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", [module, *argv])
    try:
        with warnings.catch_warnings():  # "found in sys.modules ... prior to execution": running it again is the point
            warnings.filterwarnings("ignore", category=RuntimeWarning, module="runpy")
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
