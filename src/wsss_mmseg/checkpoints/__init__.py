"""mmengine checkpoints as plain data, read by torch's weights-only unpickler with nothing added.

mmengine 0.10.7 pickles its message hub (``HistoryBuffer`` objects, which pickle their
statistics methods as ``getattr(HistoryBuffer, "min")``) and numpy scalars into every
checkpoint. Loading those weights-only needs ``builtins.getattr`` on the allow-list, and with
``getattr`` allowed a crafted pickle walks from any allowed function to its module's
``__globals__``, swaps a ``torch.serialization`` helper for ``exec`` and runs code before torch
refuses the file (issue 11, finding 1). So nothing is added to the allow-list any more:

* :class:`PlainCheckpointHook` rewrites each checkpoint just before mmengine saves it into
  tensors, numbers, strings, lists and dicts (``HistoryBuffer`` and numpy arrays become tagged
  dicts of tensors, numpy scalars Python numbers) and rebuilds the objects right after
  loading, before the runner resumes from it.
* :func:`load_plain_checkpoint` replaces mmengine's loader of local files (every ``load_from``,
  resume, ``Pretrained`` init and :func:`wsss_mmseg.inference.load_segmenter` goes through it):
  ``torch.load(weights_only=True)`` with torch's default allow-list only. Anything else is a
  :class:`~wsss.errors.CheckpointError` naming the file.
* Files written before (mmengine objects inside) are refused with a message naming the
  converter's command (:data:`CONVERT_COMMAND`, ``__main__.py``), which rebuilds them without
  running their code: ``getattr`` is served by a stand-in that only names HistoryBuffer's four
  statistics methods.
"""

from __future__ import annotations

import contextlib
import pickle
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS
from mmengine.runner import CheckpointLoader

from wsss.errors import CheckpointError
from wsss.io.atomic import atomic_path

__all__ = [
    "CONVERT_COMMAND",
    "PlainCheckpointHook",
    "convert_legacy_checkpoint",
    "from_plain",
    "load_plain_checkpoint",
    "require_plain_checkpoints",
    "to_plain",
    "use_plain_checkpoint_loader",
]

TAG = "__wsss_plain__"
"""Key of the dicts that stand for a non-plain object (its value names the object's kind)."""

_UNREADABLE = (RuntimeError, EOFError, ValueError, OSError, KeyError, TypeError, AttributeError, IndexError)
"""What torch.load raises on a file that is not a checkpoint (a text file gave `KeyError: 101`)."""
_PLAIN_LEAVES = (type(None), bool, int, float, str, bytes, torch.Tensor, torch.Size, torch.dtype, torch.device)
CONVERT_COMMAND = "python -m wsss_mmseg.checkpoints convert OLD NEW"
"""The converter's command line (`wsss_mmseg/checkpoints/__main__.py`), as refusals name it."""
_CONVERT_HINT = (
    f"Convert a checkpoint written by an earlier version of this project with `{CONVERT_COMMAND}` (it runs "
    "no code from the file), or delete the interrupted run's `.wsss-scratch/train-*` folder to train again"
)


def _map_container(value: Mapping[Any, Any] | list[Any] | tuple[Any, ...], convert: Callable[[Any, Any], Any]) -> Any:
    """``value`` with ``convert(key, item)`` applied to its items; the very same object when
    nothing changed (a model state dict keeps its ``_metadata``, which load_state_dict reads)."""
    pairs = list(value.items()) if isinstance(value, Mapping) else list(enumerate(value))
    converted = [(key, convert(key, item)) for key, item in pairs]
    if all(new is old for (_, new), (_, old) in zip(converted, pairs, strict=True)):
        return value
    if isinstance(value, Mapping):
        return OrderedDict(converted) if isinstance(value, OrderedDict) else dict(converted)
    items = [item for _, item in converted]
    return items if isinstance(value, list) else tuple(items)


def to_plain(value: Any, where: str = "checkpoint") -> Any:
    """``value`` with every mmengine/numpy object replaced by plain data (a weights-only pickle).

    Raises:
        TypeError: naming the dotted key of a value that has no plain form.
    """
    if isinstance(value, HistoryBuffer):
        return {
            TAG: "HistoryBuffer",
            "log_history": torch.from_numpy(np.array(value._log_history)),
            "count_history": torch.from_numpy(np.array(value._count_history)),
            "max_length": int(value.max_length),
        }
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"{where}: numpy array of Python objects has no plain form")
        return {TAG: "ndarray", "data": torch.from_numpy(value.copy())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        odd_keys = [key for key in value if type(key) not in (str, int, float, bool, type(None))]
        if odd_keys:
            raise TypeError(f"{where}: key {odd_keys[0]!r} ({type(odd_keys[0]).__qualname__}) has no plain form")
    if isinstance(value, (Mapping, list, tuple)):
        result = _map_container(value, lambda key, item: to_plain(item, f"{where}.{key}"))
        # defaultdict, namedtuple and other subclasses would need their class on the allow-list.
        if type(result) in (dict, OrderedDict, list, tuple):
            return result
        if isinstance(result, Mapping):
            return OrderedDict(result) if isinstance(result, OrderedDict) else dict(result)
        return list(result) if isinstance(result, list) else tuple(result)
    if type(value) in _PLAIN_LEAVES or isinstance(value, torch.Tensor):
        return value
    raise TypeError(f"{where}: {type(value).__qualname__} has no plain form (a weights-only load would refuse it)")


def from_plain(value: Any) -> Any:
    """Inverse of :func:`to_plain`: tagged dicts become ``HistoryBuffer``/numpy arrays again."""
    if isinstance(value, Mapping) and TAG in value:
        kind, fields = value[TAG], {key: item for key, item in value.items() if key != TAG}
        if kind == "HistoryBuffer" and _has_tensors(fields, "log_history", "count_history"):
            return HistoryBuffer(fields["log_history"].numpy(), fields["count_history"].numpy(), int(fields.get("max_length", 1000000)))
        if kind == "ndarray" and _has_tensors(fields, "data"):
            return fields["data"].numpy()
        raise ValueError(f"malformed plain-checkpoint entry {kind!r} with fields {sorted(map(str, fields))}")
    if isinstance(value, (Mapping, list, tuple)):
        return _map_container(value, lambda _, item: from_plain(item))
    return value


def _has_tensors(fields: Mapping[str, Any], *names: str) -> bool:
    return all(isinstance(fields.get(name), torch.Tensor) for name in names)


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Checkpoints are written as plain data and turned back into mmengine objects on load.

    Lowest priority: it runs after every other hook has added its part to a checkpoint.
    """

    priority = "LOWEST"

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """Replace the checkpoint's content, in place, by its plain form."""
        plain = to_plain(checkpoint)
        checkpoint.clear()
        checkpoint.update(plain)

    def after_load_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """Rebuild the message hub's ``HistoryBuffer`` objects (and numpy arrays) in place."""
        rebuilt = from_plain(checkpoint)
        checkpoint.clear()
        checkpoint.update(rebuilt)


def require_plain_checkpoints(cfg: Any) -> Any:
    """Add :class:`PlainCheckpointHook` to an mmengine config's ``custom_hooks`` (once)."""
    hooks = list(cfg.get("custom_hooks") or [])
    present = (
        isinstance(hook, PlainCheckpointHook) or (isinstance(hook, Mapping) and hook.get("type") in ("PlainCheckpointHook", PlainCheckpointHook))
        for hook in hooks
    )
    if not any(present):
        hooks.append(dict(type="PlainCheckpointHook"))
    cfg.custom_hooks = hooks
    return cfg


def _weights_only_reason(error: Exception) -> str:
    """The one line of torch's long weights-only message that says what was refused."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # Drop torch's advice to allow-list the global: that is what must not be done here.
    return lines[0].split(" Please use `torch.serialization.add_safe_globals")[0] if lines else type(error).__name__


def load_plain_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader of local files, weights-only with torch's default allow-list only.

    Raises:
        FileNotFoundError: no such file (as mmengine's own loader).
        CheckpointError: naming the file, when it is not a plain-data PyTorch checkpoint.
    """
    path = Path(filename).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path} can not be found.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused: a checkpoint must be plain data (tensors, numbers, strings, lists, dicts) and this "
            f"one holds more ({_weights_only_reason(error)}); nothing from it was run. {_CONVERT_HINT}"
        ) from None
    except _UNREADABLE as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: {error})") from None


def use_plain_checkpoint_loader() -> None:
    """Route mmengine's loading of local checkpoint files through :func:`load_plain_checkpoint`."""
    CheckpointLoader.register_scheme(prefixes="", loader=load_plain_checkpoint, force=True)


# ---- conversion of checkpoints written before the plain format ---------------------------------

_STATISTICS_METHODS = frozenset({"min", "max", "current", "mean"})


class _LegacyHistoryBuffer:
    """Receives a pickled ``HistoryBuffer``'s state; mmengine's own class is never unpickled.

    (Its ``__setstate__`` would write the pickled statistics methods into a class-wide dict.)
    """

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"HistoryBuffer state must be a dict, got {type(state).__name__}")
        self.state = state


def _statistics_method_name(owner: Any, name: Any) -> str:
    """Stands in for ``builtins.getattr``: names a HistoryBuffer statistics method, nothing else."""
    if owner is _LegacyHistoryBuffer and name in _STATISTICS_METHODS:
        return f"HistoryBuffer.{name}"
    raise pickle.UnpicklingError(f"getattr({owner!r}, {name!r}) is not a HistoryBuffer statistics method: refused")


def _numpy_globals() -> list[Callable[..., Any]]:
    """numpy's own pickle entry points and dtype classes (they build arrays, nothing else)."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 moved core -> _core
    found: list[Any] = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype]
    found.extend(getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType") and isinstance(getattr(np.dtypes, name), type))
    return found


@contextlib.contextmanager
def _legacy_globals() -> Iterator[None]:
    names = "mmengine.logging.history_buffer.HistoryBuffer"
    with torch.serialization.safe_globals([(_statistics_method_name, "builtins.getattr"), (_LegacyHistoryBuffer, names), *_numpy_globals()]):
        yield


def _rebuild_legacy(value: Any) -> Any:
    if isinstance(value, _LegacyHistoryBuffer):
        state = value.state
        return HistoryBuffer(state["_log_history"], state["_count_history"], int(state["max_length"]))
    if isinstance(value, (Mapping, list, tuple)):
        return _map_container(value, lambda _, item: _rebuild_legacy(item))
    return value


def convert_legacy_checkpoint(source: Path, destination: Path) -> Path:
    """Rewrite an mmengine checkpoint that holds mmengine/numpy objects as a plain-data one.

    The file is read by torch's weights-only unpickler with numpy's array constructors, a
    stand-in for ``HistoryBuffer`` and a stand-in for ``getattr`` that only names
    HistoryBuffer's statistics methods: a pickle that reaches for anything else is refused.

    Raises:
        CheckpointError: naming ``source`` when it cannot be read that way.
    """
    try:
        with _legacy_globals():
            checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{source}: cannot convert ({_weights_only_reason(error)})") from None
    except _UNREADABLE as error:
        reason = f"{type(error).__name__}: {error}"
        raise CheckpointError(f"{source}: not a readable PyTorch checkpoint ({reason})") from None
    try:
        plain = to_plain(_rebuild_legacy(checkpoint))
    except (TypeError, KeyError, ValueError) as error:
        raise CheckpointError(f"{source}: cannot convert ({error})") from None
    with atomic_path(destination) as temporary, open(temporary, "wb") as handle:
        torch.save(plain, handle)  # a file object: torch's archive writer refuses the temporary's leading dot
    return destination
