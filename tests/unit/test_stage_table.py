"""Each stage's facts are declared once, in the stage table (`wsss.stages`): dvc.yaml's cmd, code
deps and params, the reuse-key code digest, the pipeline order and the entries all come from it.

The bug this guards against: `PSEUDO_CODE` listed viz.py but not palette.py while dvc.yaml's
pseudo deps listed palette.py but not viz.py, so a palette change reran the stage yet kept every
mask (stale colours, exit 0), and a viz.py change re-keyed every mask without DVC rerunning.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wsss import stage_code
from wsss.catalog import ArtifactLayout
from wsss.dvc_yaml import dvc_params, is_code, rewritten
from wsss.stage_code import files_digest, import_closure, key_code_files, repository_roots, run_code_files
from wsss.stages import STAGE_NAMES, STAGES, flow_command, stage, upstream_of

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
KEYED = [entry for entry in STAGES if entry.computes]


def dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def covered(path: str, deps: list[str]) -> bool:
    """Whether DVC reruns a stage when `path` changes: a dep is the file or a folder above it."""
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def relative(paths: list[Path], root: Path = ROOT) -> set[str]:
    return {p.relative_to(root).as_posix() for p in paths}


def test_dvc_yaml_cmd_code_deps_and_params_are_the_tables() -> None:
    text = (ROOT / "dvc.yaml").read_text()
    assert rewritten(text, ROOT) == text, "dvc.yaml differs from the stage table: run `python -m wsss.dvc_yaml`"
    stages = dvc_stages()
    assert list(stages) == list(STAGE_NAMES)  # the table's order, and no stage missing on either side
    for entry in STAGES:
        assert stages[entry.name]["cmd"] == flow_command(entry)
        assert stages[entry.name].get("params", []) == dvc_params(entry)


def test_the_table_order_is_a_pipeline_order_of_the_catalogs_artifacts() -> None:
    assert set(STAGE_NAMES) == set(ArtifactLayout().dvc_stages())
    for position, name in enumerate(STAGE_NAMES):
        assert set(upstream_of(name)) <= set(STAGE_NAMES[:position]), name
    assert upstream_of("pseudo") == ("prepare", "prompts", "cams", "refine")
    for entry in STAGES:
        assert list(entry.runs) == [n for n in STAGE_NAMES if n in entry.runs], entry.name


def test_every_entry_and_flow_of_the_table_exists() -> None:
    for entry in STAGES:
        assert entry.entry_function == f"run_{entry.name}", entry.name
        assert callable(getattr(importlib.import_module(entry.entry_module), entry.entry_function))
        assert callable(getattr(importlib.import_module(entry.flow), entry.flow_function))


def test_the_refine_stage_reruns_when_the_preset_changes_its_box_threshold() -> None:
    assert "classes.preset" in dvc_params(stage("refine"))
    assert "classes.preset" not in dvc_params(stage("pseudo"))


@pytest.mark.parametrize("entry", KEYED, ids=[e.name for e in KEYED])
def test_code_that_enters_a_stages_keys_also_reruns_it(entry) -> None:
    deps = [d for d in dvc_stages()[entry.name]["deps"] if is_code(d)]
    missing = sorted(p for p in relative(key_code_files(entry, SRC), ROOT) if not covered(p, deps))
    assert missing == [], f"{entry.name}: key code DVC would not rerun the stage for"


@pytest.mark.parametrize("entry", STAGES, ids=[e.name for e in STAGES])
def test_dvc_reruns_a_stage_for_exactly_the_code_its_process_runs(entry) -> None:
    """A folder dep stands for its files only when every one of them is the stage's code."""
    deps = [d for d in dvc_stages()[entry.name]["deps"] if is_code(d) and not d.startswith("${")]
    ours = relative(run_code_files(entry, ROOT)) | set(entry.data)
    everything = {p.relative_to(ROOT).as_posix() for top in ("src", "tasks", "flows") for p in (ROOT / top).rglob("*.py")}
    assert {p for p in everything if covered(p, deps)} == {p for p in everything if p in ours or covered(p, list(entry.data))}


def test_mask_writing_code_rekeys_the_masks_and_reruns_pseudo_and_other_code_does_neither() -> None:
    pseudo = stage("pseudo")
    keyed = relative(key_code_files(pseudo, SRC), SRC)
    deps = [d for d in dvc_stages()["pseudo"]["deps"] if is_code(d)]
    assert "wsss/palette.py" in keyed and covered("src/wsss/palette.py", deps)  # masks are written through it
    assert "wsss/viz.py" not in keyed and not covered("src/wsss/viz.py", deps)  # overlays: no mask depends on it


@pytest.mark.parametrize("entry", KEYED, ids=[e.name for e in KEYED])
def test_a_change_to_any_key_file_changes_the_digest_and_other_files_do_not(entry, tmp_path: Path) -> None:
    """On a copy of the core: each file of the stage's list changes its code digest, a file outside does not."""
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    files = key_code_files(entry, copy)
    before = files_digest(files, copy)
    for path in files:
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        assert files_digest(key_code_files(entry, copy), copy) != before, path
        path.write_bytes(original)
    outside = sorted(set((copy / "wsss").rglob("*.py")) - set(files))
    assert outside  # e.g. the CLI
    for path in outside[:5]:
        path.write_text(path.read_text() + "\n# changed\n")
    assert files_digest(key_code_files(entry, copy), copy) == before


def test_the_code_digest_is_read_from_the_core_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    monkeypatch.setattr(stage_code, "CORE_ROOT", copy)
    stage_code.code_digest.cache_clear()
    try:
        before = stage_code.code_digest("pseudo")
        palette = copy / "wsss" / "palette.py"
        palette.write_text(palette.read_text() + "\n# another colour\n")
        stage_code.code_digest.cache_clear()
        assert stage_code.code_digest("pseudo") != before
    finally:
        stage_code.code_digest.cache_clear()


@pytest.mark.slow
def test_the_static_closure_holds_every_module_an_import_really_loads() -> None:
    """What the import walker misses (a dynamic import, a lazily exported name) would be code that
    neither keys nor DVC follow: import every flow and computing module for real and compare."""
    modules = sorted({e.flow for e in STAGES} | {m for e in STAGES for m in e.computes} | {"flows.relabel", "flows.pipeline"})
    script = (
        f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(getattr(m, '__file__', None) or '' for n, m in list(sys.modules.items())"
        " if n.split('.')[0] in ('wsss', 'wsss_mmseg', 'tasks', 'flows'))))"
    )
    env = {"PYTHONPATH": f"{SRC}:{ROOT}", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=600).stdout
    )
    static = {str(p) for p in import_closure(modules, repository_roots(ROOT))}
    assert sorted(set(loaded) - static - {""}) == []
