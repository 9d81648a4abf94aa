"""Start-up of the stage processes that never run CLIP, and of `import wsss.params`.

Every stage runs as its own process (`python -m flows.<stage>` under DVC), so what its imports
cost is paid once per stage, before any work. For each source tree given (default: this
repository; pass an older checkout too to compare), each command runs `--repeats` times,
interleaved over the trees so that load on the machine hits all of them alike:

* `import wsss.params` (wall time), and whether torch / open_clip get imported
  (`python -X importtime`: its total, and the heavy modules it lists);
* `python -m flows.prepare --help` and `python -m flows.pseudo --help`: the stage process up to
  argument parsing (every import of the flow, its tasks and the core), i.e. its start-up.

    python -m benchmarks.stage_startup [--tree DIR ...] [--repeats 7] [--json PATH]

Prints medians (and min) per tree and command; `--json` writes every run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import ROOT, json_option, timed, write_json

COMMANDS = {
    "import wsss.params": ["-c", "import wsss.params"],
    "flows.prepare start-up": ["-m", "flows.prepare", "--help"],
    "flows.pseudo start-up": ["-m", "flows.pseudo", "--help"],
}
HEAVY = ("torch", "open_clip")


def environment(tree: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=f"{tree / 'src'}{os.pathsep}{tree}", HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")


def wall_seconds(tree: Path, arguments: list[str]) -> float:
    return timed(lambda: subprocess.run([sys.executable, *arguments], cwd=tree, env=environment(tree), capture_output=True, check=True, timeout=600))[
        0
    ]


def import_time(tree: Path) -> dict[str, object]:
    """`-X importtime` of wsss.params: cumulative microseconds of the top module, heavy modules seen."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import wsss.params"],
        cwd=tree,
        env=environment(tree),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    rows = [re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line) for line in result.stderr.splitlines()]
    rows = [row for row in rows if row]
    total = next(int(row[2]) for row in rows if row[4] == "wsss.params")
    heavy = sorted({row[4] for row in rows if row[4].split(".")[0] in HEAVY and "." not in row[4]})
    return {"cumulative_s": total / 1e6, "heavy_modules": heavy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, action="append", help="source tree (repeatable; default: this repository)")
    parser.add_argument("--repeats", type=int, default=7)
    json_option(parser)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    runs: dict[str, dict[str, list[float]]] = {str(t): {name: [] for name in COMMANDS} for t in trees}
    importtime: dict[str, list[dict[str, object]]] = {str(t): [] for t in trees}
    for _ in range(args.repeats):
        for name, arguments in COMMANDS.items():
            for tree in trees:  # interleaved: the same load for every tree
                runs[str(tree)][name].append(wall_seconds(tree, arguments))
        for tree in trees:
            importtime[str(tree)].append(import_time(tree))
    summary = {}
    for tree in trees:
        times = runs[str(tree)]
        seen = importtime[str(tree)]
        summary[str(tree)] = {
            **{f"{name} median_s": round(statistics.median(v), 3) for name, v in times.items()},
            **{f"{name} min_s": round(min(v), 3) for name, v in times.items()},
            "importtime wsss.params median_s": round(statistics.median(float(s["cumulative_s"]) for s in seen), 3),  # type: ignore[arg-type]
            "torch/open_clip imported by wsss.params": sorted({m for s in seen for m in s["heavy_modules"]}),  # type: ignore[attr-defined]
        }
        print(f"{tree} ({args.repeats} runs each, medians; min in brackets)")
        for name, values in times.items():
            print(f"  {name:<26} {statistics.median(values):6.2f} s  [{min(values):.2f}]")
        print(
            f"  {'importtime wsss.params':<26} {summary[str(tree)]['importtime wsss.params median_s']:6.2f} s  "
            f"heavy modules: {', '.join(summary[str(tree)]['torch/open_clip imported by wsss.params']) or 'none'}"
        )
    write_json(args.json, {"python": sys.executable, "repeats": args.repeats, "summary": summary, "runs": runs, "importtime": importtime})


if __name__ == "__main__":
    main()
