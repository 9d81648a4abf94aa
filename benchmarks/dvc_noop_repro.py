"""Wall time of `dvc repro` and `dvc status` when nothing changed (target: repro < 10 s).

Run in a workspace where the pipeline has completed (e.g. after `make pipeline`):
    python -m benchmarks.dvc_noop_repro [--repeats 3] [--root .] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import json_option, timed, write_json


def run(command: list[str], root: Path, env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a command that must succeed."""
    seconds, result = timed(lambda: subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=True))
    return seconds, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--repeats", type=int, default=3)
    json_option(parser)
    args = parser.parse_args()
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    dvc = [sys.executable, "-m", "dvc"]
    status_s, status = run([*dvc, "status"], args.root, env)
    if "up to date" not in status:
        sys.exit(f"the pipeline in {args.root} is not up to date; run `dvc repro` first:\n{status}")
    repro, stati = [], []
    for _ in range(args.repeats):
        seconds, output = run([*dvc, "repro"], args.root, env)
        if re.search(r"Running stage", output):
            sys.exit(f"a stage ran although nothing changed:\n{output}")
        repro.append(seconds)
        stati.append(run([*dvc, "status"], args.root, env)[0])
    print(f"dvc repro, nothing changed: median {statistics.median(repro):.2f} s (runs: {', '.join(f'{s:.2f}' for s in repro)}); target < 10 s")
    print(f"dvc status: median {statistics.median(stati):.2f} s")
    write_json(
        args.json,
        {
            "root": str(args.root.resolve()),
            "noop_repro_s": repro,
            "noop_repro_median_s": statistics.median(repro),
            "target_s": 10,
            "status_s": [status_s, *stati],
            "status_median_s": statistics.median(stati),
        },
    )


if __name__ == "__main__":
    main()
