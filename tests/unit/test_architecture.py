"""The layering rules, checked on the source: flows only wire, modules stay small, no import
cycles, one atomic-write helper, and dvc.yaml names exactly the catalog's artifact paths."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from wsss.catalog import ArtifactLayout

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("src/wsss", "src/wsss_mmseg", "tasks", "flows")


def python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT / "src" if path.is_relative_to(ROOT / "src") else ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def top_level_imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(module, imported names) of the module-level imports (function-local ones break no cycle)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


FLOW_CORE_IMPORTS = (
    "from wsss.params import load_params",
    "from wsss.catalog import ArtifactLayout",
    "from wsss.stages import STAGES, Stage",
)  # the last: the pipeline flow runs the stage table


def test_flows_import_only_typed_params_the_layout_and_the_stage_table_from_the_core() -> None:
    for path in python_files("flows"):
        core = [line for line in path.read_text().splitlines() if re.match(r"^(from|import) wsss", line)]
        assert all(line in FLOW_CORE_IMPORTS for line in core), (path, core)


def test_no_stage_entry_imports_another() -> None:
    """Stage entries read upstream outputs through the core's readers (`wsss.stage_inputs`), and the
    runs that chain stages (relabel, the second pass) find entries through the stage table."""
    from wsss.stages import STAGES

    entries = {stage.entry_module for stage in STAGES} | {"tasks.relabel"}
    for module in sorted(entries):
        path = ROOT / (module.replace(".", "/") + ".py")
        imported = {
            name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for name in ([node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])
        }
        assert not (imported & entries) - {module}, (module, sorted(imported & entries))


def test_flow_functions_only_wire() -> None:
    for path in python_files("flows"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                assert length <= 30, f"{path.name}:{node.name} has {length} lines"


def test_no_module_over_400_lines() -> None:
    for path in python_files(*PACKAGES, "benchmarks"):
        assert len(path.read_text().splitlines()) <= 400, path


def test_benchmarks_are_a_package_that_never_reaches_into_tests_or_edits_the_path() -> None:
    """`python -m benchmarks.<name>` from the root: no `sys.path` edits, nothing from tests/ (and on the
    GPU machine mmsegmentation's own top-level `tests` package would answer), every entry takes `--json`."""
    assert (ROOT / "benchmarks" / "__init__.py").is_file()
    for path in python_files("benchmarks"):
        text = path.read_text()
        assert not re.search(r"sys\.path\s*(\[|\.insert|\.append|\.extend|\+?=)", text), f"{path.name} edits sys.path"
        imported = [module for module, _ in top_level_imports(path)]
        imported += [node.module or "" for node in ast.walk(ast.parse(text)) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in imported if m == "tests" or m.startswith("tests.")], f"{path.name} imports from tests/"
        if re.search(r"^if __name__ == \"__main__\":", text, re.MULTILINE):
            assert "json_option(parser)" in text, f"{path.name} has no --json (benchmarks.common.json_option)"


def test_core_imports_no_orchestrator() -> None:
    for path in python_files("src/wsss"):
        for module, _ in top_level_imports(path):
            assert module.split(".")[0] not in ("prefect", "prefect_dask", "dvc", "mmseg", "mmengine", "mmcv"), (path, module)


def test_no_import_cycle_and_no_private_names_across_modules() -> None:
    modules = {module_name(path): path for path in python_files("src/wsss", "tasks", "flows")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = set()
        for module, names in top_level_imports(path):
            targets = [f"{module}.{n}" if f"{module}.{n}" in modules else module for n in names] or [module]
            graph[name] |= {t for t in targets if t in modules and t != name}
            private = [n for n in names if n.startswith("_") and not n.endswith("__")]
            ours = module.split(".")[0] in ("wsss", "wsss_mmseg", "tasks", "flows")  # a library's internals are its own business
            assert not private or not ours or module == name, f"{name} imports private {private} from {module}"
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*trail, node, target])
            if target not in state:
                visit(target, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_one_atomic_write_helper() -> None:
    """Every file this project writes goes through `wsss.io.atomic` (no other rename or `.partial`)."""
    for path in python_files(*PACKAGES):
        if path == ROOT / "src/wsss/io/atomic.py":
            continue
        text = path.read_text()
        assert not re.search(r"os\.(replace|rename)\(|\.replace\(\w*(path|destination|target)\)|\+ \"\.partial\"", text), path


def artifact_paths(entries: list) -> set[str]:
    """The artifacts/, data/sample and human-input (corrections, reviewed.json) paths of a stage's deps/outs list."""
    names = {next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries or []}
    return {name for name in names if name.startswith(("artifacts/", "data/sample")) or name in ("corrections", "reviewed.json")}


def test_dvc_yaml_names_exactly_the_catalog_paths() -> None:
    document = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stages = document["stages"]
    catalog = ArtifactLayout().dvc_stages()
    top_level = {path for plot in document.get("plots") or [] for spec in plot.values() for path in (spec.get("y") or {})}
    assert top_level == {p.as_posix() for p in ArtifactLayout().dvc_top_level_plots()}
    assert set(stages) == set(catalog)
    for name, stage in stages.items():
        deps = artifact_paths(stage.get("deps"))
        outs = artifact_paths([*(stage.get("outs") or []), *(stage.get("metrics") or []), *(stage.get("plots") or [])])
        assert deps == {p.as_posix() for p in catalog[name]["deps"]}, name
        assert outs == {p.as_posix() for p in catalog[name]["outs"]}, name
