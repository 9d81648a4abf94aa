"""Weights of a TorchScript archive (OpenAI's `ViT-B-16.pt`), read without running any of its code.

`torch.jit.load` compiles the archive's `code/` and runs each object's TorchScript
`__setstate__` while loading: a crafted "CLIP checkpoint" then writes files (`torch.from_file(...,
shared=True)` + `fill_`) or loops forever before any check of ours (issue 11, finding 2). The
module tree and its tensors, however, are an ordinary pickle (`data.pkl`, storages under
`data/`), the same zip layout `torch.save` writes. So this reader

* never reads `code/` as code: the archive is refused when it defines a `__setstate__` (the only
  code a load would run) and otherwise `code/` and `constants.pkl` are dropped;
* unpickles `data.pkl` with torch's weights-only unpickler, the archive's `__torch__.*` classes
  standing for an inert record class that only keeps the attribute dict it is given (a state
  that is not a dict would be the input of a `__setstate__`: refused);
* flattens the records into a state dict: every tensor attribute under its dotted path, which is
  what `ScriptModule.state_dict()` returns for modules whose tensors are all parameters or
  buffers (CLIP's), apart from the text tower's `attn_mask` buffers, dropped as before.
"""

from __future__ import annotations

import pickle
import pickletools
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.jit import _pickle as jit_pickle

from wsss.errors import CheckpointError

__all__ = ["is_torchscript_archive", "read_torchscript_weights"]

MAX_DATA_PKL_BYTES = 64 << 20
"""Larger module-tree pickles (and code files) are refused (OpenAI's ViT-B/16 ones are kilobytes)."""
MAX_OBJECTS = 100_000
MAX_DEPTH = 64

# TorchScript's pickler writes typed lists through these; each returns its argument unchanged.
_JIT_LIST_HELPERS = ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "restore_type_tag")


class ScriptObjectRecord:
    """Stands for one object of the archive's `__torch__.*` classes: its attributes, no behaviour."""

    qualified_name = "__torch__"

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise CheckpointError(
                f"TorchScript object {self.qualified_name} carries a custom state ({type(state).__name__}) that only "
                "its own __setstate__ code could interpret; such archives are not loaded"
            )
        self.attributes = state


def is_torchscript_archive(path: Path) -> bool:
    """A zip with `constants.pkl` or a `code/` folder: what `torch.jit.save` writes."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def read_torchscript_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a TorchScript archive's module tree, as a state dict; runs nothing from it.

    Raises:
        CheckpointError: naming the file, when it defines `__setstate__`, holds anything but
            modules, tensors and plain values, or is not a TorchScript zip archive.
    """
    try:
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryFile() as plain:
            data_pkl_name = _data_pkl_name(archive)
            _refuse_setstate(archive)
            globals_used = _pickle_globals(archive.read(data_pkl_name))
            _copy_without_code(archive, plain)
            plain.seek(0)
            with _script_classes_as_records(globals_used):
                root = torch.load(plain, map_location="cpu", weights_only=True)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: TorchScript archive holds more than modules and tensors ({_weights_only_reason(error)}); nothing from it was run"
        ) from None
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError) as error:
        reason = f"{type(error).__name__}: {error}"
        raise CheckpointError(f"{path}: TorchScript archive could not be read ({reason})") from None
    if not isinstance(root, ScriptObjectRecord):
        raise CheckpointError(f"{path}: TorchScript archive does not hold a module (found {type(root).__name__})")
    return _flatten(root, path)


def _weights_only_reason(error: Exception) -> str:
    """The line of torch's weights-only message that says what was refused."""
    text = str(error).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].split(" Please use `torch.serialization")[0] if lines else type(error).__name__


def _data_pkl_name(archive: zipfile.ZipFile) -> str:
    names = [i for i in archive.infolist() if i.filename.count("/") == 1 and i.filename.endswith("/data.pkl")]
    if len(names) != 1:
        raise CheckpointError("not a TorchScript zip archive (no single <name>/data.pkl)")
    if names[0].file_size > MAX_DATA_PKL_BYTES:
        raise CheckpointError(f"data.pkl is {names[0].file_size} bytes, more than {MAX_DATA_PKL_BYTES}")
    return names[0].filename


def _refuse_setstate(archive: zipfile.ZipFile) -> None:
    """`torch.jit.load` would run a class's `__setstate__`; CLIP's modules define none."""
    for info in archive.infolist():
        if "/code/" in info.filename and info.filename.endswith(".py"):
            if info.file_size > MAX_DATA_PKL_BYTES:
                raise CheckpointError(f"{info.filename} is {info.file_size} bytes of TorchScript code; refused")
            if b"__setstate__" in archive.read(info):
                raise CheckpointError(
                    f"its TorchScript code ({info.filename}) defines __setstate__, code that a TorchScript load "
                    "would run; refused without running it (a CLIP checkpoint defines none)"
                )


def _pickle_globals(data_pkl: bytes) -> set[tuple[str, str]]:
    """(module, name) of every GLOBAL opcode; `pickletools.genops` only parses, it builds nothing."""
    found = set()
    try:
        for opcode, argument, _ in pickletools.genops(data_pkl):
            if opcode.name == "GLOBAL":
                module, name = str(argument).split(" ", 1)
                found.add((module, name))
    except Exception as error:  # noqa: BLE001 - a parse error of any kind: genops builds no objects
        raise CheckpointError(f"data.pkl is not a valid pickle ({type(error).__name__}: {error})") from None
    return found


def _copy_without_code(archive: zipfile.ZipFile, destination: Any) -> None:
    """The archive minus `code/` and `constants.pkl`: a torch.save layout torch.load reads weights-only."""
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_STORED) as plain:
        for info in archive.infolist():
            if "/code/" in info.filename or info.filename.endswith("/constants.pkl"):
                continue
            large = info.file_size >= 1 << 31
            with archive.open(info) as source, plain.open(info.filename, "w", force_zip64=large) as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)


@contextmanager
def _script_classes_as_records(globals_used: set[tuple[str, str]]) -> Iterator[None]:
    """Within the block the weights-only unpickler maps each `__torch__.*` class to a record class."""
    mapping: list[Any] = []
    for module, name in sorted(globals_used):
        qualified = f"{module}.{name}"
        if module == "__torch__" or module.startswith("__torch__."):
            record_class = type(name, (ScriptObjectRecord,), {"qualified_name": qualified})
            mapping.append((record_class, qualified))
        elif module == "torch.jit._pickle" and name in _JIT_LIST_HELPERS:
            mapping.append((getattr(jit_pickle, name), qualified))
    with torch.serialization.safe_globals(mapping):
        yield


def _flatten(root: ScriptObjectRecord, path: Path) -> dict[str, torch.Tensor]:
    """Dotted path -> tensor over the module records (iterative; bounded depth and size)."""
    weights: dict[str, torch.Tensor] = {}
    pending: list[tuple[str, ScriptObjectRecord, int]] = [("", root, 0)]
    visited = 0
    while pending:
        prefix, record, depth = pending.pop()
        visited += 1
        if visited > MAX_OBJECTS or depth > MAX_DEPTH:
            raise CheckpointError(f"{path}: TorchScript module tree is larger than {MAX_OBJECTS} objects or {MAX_DEPTH} levels")
        for name, value in getattr(record, "attributes", {}).items():  # no BUILD: no attributes
            if not isinstance(name, str):
                continue
            if isinstance(value, torch.Tensor):
                if name != "attn_mask":  # the text tower's causal mask: a buffer, not a weight
                    weights[prefix + name] = value.detach()
            elif isinstance(value, ScriptObjectRecord):
                pending.append((f"{prefix}{name}.", value, depth + 1))
    return weights
