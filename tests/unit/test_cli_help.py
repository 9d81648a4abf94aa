"""The command lines people type: every argument says what it is, and `--help` needs no heavy import
(the times are measured by benchmarks/cli_help.py)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from wsss.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def arguments(parser: argparse.ArgumentParser, path: str = "wsss") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from arguments(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_argument_of_every_wsss_command_has_help_text() -> None:
    missing = [f"{path} {action.option_strings or action.dest}" for path, action in arguments(build_parser()) if not (action.help or "").strip()]
    assert not missing, missing


def test_every_subcommand_has_a_one_line_help() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    assert {"run", "relabel", "serve", "status", "metrics"} <= set(helps)
    assert all(helps.values()), helps


def test_stage_command_arguments_have_help_text() -> None:
    from tasks.command_line import relabel_serve_arguments, repro_arguments, stage_parser

    for parser in (
        stage_parser(("run", "serve"), runner=True, extra=relabel_serve_arguments),
        stage_parser(("run",), extra=repro_arguments),
        stage_parser(("cams",), runner=True),
    ):
        missing = [
            f"{path} {action.option_strings or action.dest}" for path, action in arguments(parser, parser.prog) if not (action.help or "").strip()
        ]
        assert not missing, missing


def test_help_imports_neither_torch_nor_prefect_nor_dvc() -> None:
    """`wsss <command> --help` and `python -m flows.relabel --help` answer before the heavy imports."""
    probe = (
        "import sys, runpy\n"
        "sys.argv = sys.argv[1:]\n"
        "try:\n    runpy.run_module(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'open_clip', 'prefect', 'dvc', 'mmseg', 'numpy') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    for command in (
        ["wsss.cli", "--help"],
        ["wsss.cli", "run", "--help"],
        ["wsss.cli", "serve", "--help"],
        ["wsss.cli", "status", "--help"],
        ["flows.relabel", "--help"],
        ["flows.relabel", "serve", "--help"],
    ):
        result = subprocess.run([sys.executable, "-c", probe, *command], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
        assert "HEAVY []" in result.stderr, (command, result.stderr[-2000:])
        assert "usage:" in result.stdout, command
