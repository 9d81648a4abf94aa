"""A stage's code, computed from imports: the code digest of its reuse keys and its DVC code deps.

Both come from the stage table (`wsss.stages`), so they cannot disagree or miss a file:

* the **code digest** of a stage's reuse keys covers the import closure of its `computes`
  modules (the core code that decides the stored values): a change there re-keys every image;
* its **DVC code deps** are the import closure of its flow module (flows/, tasks/ and src/: all
  code the stage process runs), plus its `data` files; a change there reruns the stage, which
  recomputes only what the keys say changed. The key's files are part of it (checked by a test).

The closure follows every executed `import` of a module (module level and inside functions, not
those under `if TYPE_CHECKING:`), the packages above each module, and a lazily exported name
(`wsss.lazy_exports`) to the module that defines it. Only this project's packages are followed.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from wsss.lazy_exports import is_type_checking, type_checking_imports
from wsss.stages import STAGES, Stage, stage

CORE_PACKAGES = ("wsss", "wsss_mmseg")  # under src/ (or site-packages once installed)
ENTRY_PACKAGES = ("tasks", "flows")  # at the repository root
# Where the core's modules are read from (src/, or site-packages); tests point it at a copy.
CORE_ROOT = Path(__file__).resolve().parents[1]


def module_file(module: str, roots: Mapping[str, Path]) -> Path | None:
    """The file of a module of one of our packages (`roots`: top package -> folder holding it)."""
    root = roots.get(module.split(".", maxsplit=1)[0])
    if root is None:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _executed_imports(tree: ast.Module) -> Iterable[ast.Import | ast.ImportFrom]:
    """Import statements that run (anywhere in the module, except under `if TYPE_CHECKING:`)."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        todo.extend(ast.iter_child_nodes(node))


@cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def direct_imports(module: str, roots: Mapping[str, Path]) -> set[str]:
    """Modules of our packages that importing (and running) `module` imports."""
    path = module_file(module, roots)
    if path is None:
        return set()
    found: set[str] = set()
    for node in _executed_imports(_parsed(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        if not node.module or node.level:
            continue
        found.add(node.module)
        package = module_file(node.module, roots)
        lazy = type_checking_imports(_parsed(package)) if package and package.name == "__init__.py" else {}
        for alias in node.names:
            if module_file(f"{node.module}.{alias.name}", roots):
                found.add(f"{node.module}.{alias.name}")  # a submodule
            elif alias.name in lazy:
                found.add(lazy[alias.name][0])  # a lazily exported name: its defining module
    return {name for name in found if module_file(name, roots)}


def import_closure(modules: Iterable[str], roots: Mapping[str, Path]) -> list[Path]:
    """Files of `modules`, their packages and everything they import (of our packages), sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen or module_file(module, roots) is None:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # running a module runs its packages
        todo.extend(direct_imports(module, roots))
    return sorted({module_file(m, roots) for m in seen}, key=lambda p: p.as_posix())  # type: ignore[misc]


def core_roots(core_root: Path | None = None) -> dict[str, Path]:
    root = core_root or CORE_ROOT
    return dict.fromkeys(CORE_PACKAGES, root)


def repository_roots(repo: Path) -> dict[str, Path]:
    return {**core_roots(repo / "src"), **dict.fromkeys(ENTRY_PACKAGES, repo)}


def key_code_files(entry: Stage, core_root: Path | None = None) -> list[Path]:
    """The core files whose code enters the stage's reuse keys (import closure of `computes`)."""
    return import_closure(entry.computes, core_roots(core_root))


def files_digest(files: Iterable[Path], root: Path) -> str:
    """SHA-256 over the root-relative path and bytes of each file, in path order."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def code_digest(stage_name: str) -> str:
    """Digest of the code of a stage's reuse keys (once per process; `CORE_ROOT` is read then)."""
    return files_digest(key_code_files(stage(stage_name), CORE_ROOT), CORE_ROOT)


def run_code_files(entry: Stage, repo: Path) -> list[Path]:
    """Every source file the stage's process runs: the import closure of its flow module and of
    the entries of the stages it runs (which it finds through the table, not by import)."""
    modules = [entry.flow, *(stage(name).entry_module for name in entry.runs)]
    return import_closure(modules, repository_roots(repo))


def dvc_code_deps(entry: Stage, repo: Path) -> list[str]:
    """dvc.yaml's code `deps` of a stage: `run_code_files`, a folder standing for its files when
    the closure holds every `*.py` below it, then the stage's `data` files."""
    files = {path.relative_to(repo).as_posix() for path in run_code_files(entry, repo)}
    return [*compress_to_folders(files, repo), *entry.data]


def compress_to_folders(files: set[str], repo: Path) -> list[str]:
    """Repository-relative files, with each largest folder whose `*.py` files are all listed
    (and that holds no other file type DVC would also hash) written as the folder."""
    chosen: list[str] = []
    covered: set[str] = set()
    folders = sorted(
        {str(Path(f).parent) for f in files} | {str(p) for f in files for p in Path(f).parents if str(p) != "."}, key=lambda f: (f.count("/"), f)
    )
    for folder in folders:
        if any(folder == c or folder.startswith(c + "/") for c in covered):
            continue
        below = [p for p in (repo / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        python = {p.relative_to(repo).as_posix() for p in below if p.suffix == ".py"}
        if below and python == {p.relative_to(repo).as_posix() for p in below} and python <= files:
            covered.add(folder)
            chosen.append(folder)
    singles = [f for f in files if not any(f.startswith(c + "/") for c in covered)]
    return sorted(chosen + singles)


def all_dvc_code_deps(repo: Path) -> dict[str, list[str]]:
    """Every stage's derived code deps (what `python -m wsss.stage_code` prints)."""
    return {entry.name: dvc_code_deps(entry, repo) for entry in STAGES}


if __name__ == "__main__":
    import sys

    repository = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    for name, deps in all_dvc_code_deps(repository.resolve()).items():
        print(f"{name}:")
        print("\n".join(f"  - {dep}" for dep in deps))
