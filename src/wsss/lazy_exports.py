"""Package namespaces that import their modules on first use (PEP 562), declared once.

A package's `__init__` names its public names as ordinary imports under `if TYPE_CHECKING:`
(what type checkers, readers and the stage-code closure of `wsss.stage_code` see) and ends with

    __getattr__, __dir__ = lazy_exports(__name__, __file__)

`from wsss.cam import CaaSettings` then imports `wsss.cam.settings` when the name is first
asked for, not when the package is: `import wsss.params` (every section class) stays free of
torch and open_clip, so stages that never run CLIP start in a fraction of the time. The table
name -> module is read from those imports (parsed once), so there is no second list to keep.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def type_checking_imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """name -> (module, attribute) of the absolute `from M import a [as b]` lines under a
    module-level `if TYPE_CHECKING:`."""
    table: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
                    for alias in statement.names:
                        table[alias.asname or alias.name] = (statement.module, alias.name)
    return table


def is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def lazy_exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` of a package whose public names are its TYPE_CHECKING imports."""
    table: dict[str, tuple[str, str]] = {}

    def names() -> dict[str, tuple[str, str]]:
        if not table:
            table.update(type_checking_imports(ast.parse(Path(init_file).read_text(), init_file)))
        return table

    def __getattr__(name: str) -> Any:  # noqa: N807 - the package's PEP 562 __getattr__
        entry = names().get(name)
        if entry is None:
            # `wsss.cam.caa` as an attribute of an imported `wsss.cam`, as with an eager package.
            if not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
                return importlib.import_module(f"{package}.{name}")
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(entry[0]), entry[1])
        setattr(sys.modules[package], name, value)  # later lookups do not come here again
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the package's PEP 562 __dir__
        return sorted(set(vars(sys.modules[package])) | set(names()))

    return __getattr__, __dir__
