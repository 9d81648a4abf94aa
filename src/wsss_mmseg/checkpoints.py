"""Loading mmengine checkpoints under torch >= 2.6's ``weights_only=True`` default.

mmengine 0.10.7 calls ``torch.load(filename, map_location=...)`` without ``weights_only``
(``mmengine/runner/checkpoint.py``). Since torch 2.6 that means ``weights_only=True``, whose
restricted unpickler refuses anything but tensors and plain containers, while mmengine's own
checkpoints also hold its message hub (``HistoryBuffer`` objects holding numpy arrays) and
numpy scalars. Resuming and ``load_from`` then fail with ``UnpicklingError``.

Rather than disabling the check (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` would let any pickle
run code), :func:`mmengine_checkpoint_globals` allow-lists, for the duration of one trusted
call (training, resuming, evaluation), exactly the extra types mmengine writes, through
``torch.serialization.safe_globals``. Loading stays weights-only: an unexpected type in a
checkpoint still fails.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = ["MMENGINE_CHECKPOINT_GLOBALS", "mmengine_checkpoint_globals"]


def _numpy_globals() -> list[Any]:
    """numpy's pickle entry points and dtype classes as they appear in mmengine checkpoints."""
    multiarray = getattr(np, "_core", None) or np.core  # numpy 2 moved core -> _core
    found: list[Any] = [
        multiarray.multiarray._reconstruct,
        multiarray.multiarray.scalar,
        np.ndarray,
        np.dtype,
    ]
    # numpy >= 1.25 pickles dtypes as instances of per-type classes (numpy.dtypes.Float64DType...).
    dtypes_module = getattr(np, "dtypes", None)
    if dtypes_module is not None:
        found.extend(
            getattr(dtypes_module, name)
            for name in dir(dtypes_module)
            if name.endswith("DType") and isinstance(getattr(dtypes_module, name), type)
        )
    return found


MMENGINE_CHECKPOINT_GLOBALS: tuple[Any, ...] = (
    HistoryBuffer,
    # HistoryBuffer pickles its statistics methods as `getattr(HistoryBuffer, "min")`. The
    # weights-only unpickler still calls (REDUCE) only allow-listed callables, so `getattr`
    # can fetch attributes of allow-listed objects but never make them run.
    getattr,
    OrderedDict,
    defaultdict,
    *_numpy_globals(),
)
"""Types an mmengine 0.10.7 checkpoint (meta, message hub, optimizer, schedulers) needs."""


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Within the block, weights-only ``torch.load`` also accepts mmengine checkpoint types.

    The allow-list is scoped to the block (``torch.serialization.safe_globals`` is a context
    manager), so other code in the process keeps the strict default.
    """
    with torch.serialization.safe_globals(list(MMENGINE_CHECKPOINT_GLOBALS)):
        yield
