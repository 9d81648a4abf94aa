"""`make pipeline`'s closing report never fails a good run (no pipe into `head` under pipefail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.pipeline.repos import ROOT


def _stub(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


def test_closing_report_survives_long_lineage_output_20_times(tmp_path: Path) -> None:
    """The report cuts the lineage to 20 lines without a pipe into `head` (BrokenPipe under pipefail)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "sample_report.sh", repo / "scripts" / "sample_report.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Far more than a pipe buffer, written in many chunks, as a long `wsss lineage` is.
    _stub(bin_dir / "wsss", "import sys\nfor i in range(100000):\n    sys.stdout.write(f'lineage line {i}\\n')\n")
    _stub(bin_dir / "dvc", "print('Path                  train.pseudo.crf=on.miou')\n")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for attempt in range(20):
        result = subprocess.run(["bash", "scripts/sample_report.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, f"try {attempt}: exit {result.returncode}\n{result.stderr[-2000:]}"
        lines = [line for line in result.stdout.splitlines() if line.startswith("lineage line")]
        assert lines == [f"lineage line {i}" for i in range(20)]


# `make pipeline` on a fresh clone (tracked files untouched, random weights recorded, a second run
# reruns nothing) is checked in test_dvc_repro.py, on the run that module's checks share.
