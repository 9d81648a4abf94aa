"""Stages that never run CLIP start without torch and open_clip (a fresh interpreter each).

`import wsss.params` loaded torch and open_clip (several seconds, 20-40 s between stages under
load) because five section classes lived in torch modules and every package imported all of
its modules; every stage subprocess paid it, also those that never touch CLIP.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "open_clip", "mmseg", "mmengine")
# The flows (and so the stage processes) of every stage that does not run CLIP, and the CLI.
TORCH_FREE = (
    "wsss.params",
    "wsss.params_doc",
    "wsss.cli",
    "flows.prepare",
    "flows.prompts",  # ranking (CLIP) is imported only when it runs; a pinned template needs none
    "flows.pseudo",
    "flows.review",
    "flows.train",
    "flows.evaluate",
    "flows.learn_prompts",
    "flows.learned_cams",
    "flows.relabel",
    "flows.pipeline",
    "flows.repro",
)


def heavy_modules_after_importing(module: str) -> list[str]:
    script = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return [name for name in json.loads(result.stdout) if name.split(".")[0] in HEAVY]


def test_loading_the_params_imports_neither_torch_nor_open_clip() -> None:
    assert heavy_modules_after_importing("wsss.params") == []


@pytest.mark.slow
@pytest.mark.parametrize("module", TORCH_FREE[1:])
def test_a_stage_that_does_not_run_clip_starts_without_torch(module: str) -> None:
    assert heavy_modules_after_importing(module) == []


def test_a_stage_process_without_a_prefect_set_up_uses_the_repositorys_own_prefect_home(tmp_path: Path) -> None:
    """A plain `dvc repro` (no PREFECT_HOME, no PREFECT_API_URL) ran each stage's temporary Prefect
    server on the user's default database (`~/.prefect`), which another run or server may hold
    ("database is locked"); the stage processes now use `<repository>/.prefect`, and a home the
    caller sets is kept."""
    script = "import flows\nfrom prefect.settings import get_current_settings\nprint(get_current_settings().home)"
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert Path(result.stdout.strip()) == tmp_path / ".prefect"
    mine = tmp_path / "elsewhere"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env={**env, "PREFECT_HOME": str(mine)}, capture_output=True, text=True, check=False, timeout=300
    )
    assert Path(result.stdout.strip()) == mine, result.stderr[-2000:]
