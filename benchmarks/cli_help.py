"""How long `--help` takes: `wsss --help` and every loop command's, and `python -m flows.relabel --help`.

Each answers before torch, open_clip, Prefect or DVC is imported (lazy imports; flows/relabel.py
parses its command line before its imports). For each source tree given (default: this
repository; pass an older checkout to compare), each command runs `--repeats` times, interleaved
over the trees so that load on the machine hits all of them alike; a command a tree does not have
is reported as missing.

    python -m benchmarks.cli_help [--tree DIR ...] [--repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import ROOT, json_option, timed, write_json

COMMANDS = {
    "wsss --help": ["-m", "wsss.cli", "--help"],
    "wsss run --help": ["-m", "wsss.cli", "run", "--help"],
    "wsss relabel --help": ["-m", "wsss.cli", "relabel", "--help"],
    "wsss serve --help": ["-m", "wsss.cli", "serve", "--help"],
    "wsss status --help": ["-m", "wsss.cli", "status", "--help"],
    "wsss metrics --help": ["-m", "wsss.cli", "metrics", "--help"],
    "python -m flows.relabel --help": ["-m", "flows.relabel", "--help"],
}


def seconds(tree: Path, arguments: list[str]) -> float | None:
    env = dict(os.environ, PYTHONPATH=f"{tree / 'src'}{os.pathsep}{tree}", HF_HUB_OFFLINE="1")
    elapsed, result = timed(lambda: subprocess.run([sys.executable, *arguments], cwd=tree, env=env, capture_output=True, check=False, timeout=600))
    return elapsed if result.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, action="append", help="source tree (repeatable; default: this repository)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per command and tree (default: 5)")
    json_option(parser)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    runs: dict[str, dict[str, list[float | None]]] = {str(t): {name: [] for name in COMMANDS} for t in trees}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, arguments in COMMANDS.items():
            for tree in trees:
                runs[str(tree)][name].append(seconds(tree, arguments))
    summary: dict[str, dict[str, float | str]] = {}
    for tree in trees:
        summary[str(tree)] = {}
        for name, values in runs[str(tree)].items():
            done = [v for v in values if v is not None]
            summary[str(tree)][name] = round(statistics.median(done), 3) if len(done) == len(values) else "missing"
            print(f"{tree.name:>12s}  {name:34s} {summary[str(tree)][name]}{' s' if done else ''}")
    print(f"load average (1 min) at start {load:.2f}, at end {os.getloadavg()[0]:.2f}")
    write_json(
        args.json, {"median_s": summary, "runs": runs, "repeats": args.repeats, "load_average_1min": [round(load, 2), round(os.getloadavg()[0], 2)]}
    )


if __name__ == "__main__":
    main()
