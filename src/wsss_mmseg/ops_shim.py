"""Make ``import mmseg.models`` work with mmcv-lite (no compiled ``mmcv._ext``).

Why this exists: mmseg 1.2.2 imports ``mmcv.ops`` unguarded at module level
(``point_sample`` in ``models/utils/point_sample.py`` and ``utils/mask_classification.py``,
``sigmoid_focal_loss`` in ``models/losses/focal_loss.py``), and mmcv-lite's
``mmcv/ops/__init__.py`` loads the C++ extension eagerly, so every mmseg model import fails
with ``No module named 'mmcv._ext'``. DeepLabV2 (dilated ResNet + ASPP-v2 head + CE) uses no
compiled op, so the adapter installs a minimal ``mmcv.ops`` module before mmseg is imported:

* ``point_sample`` and its helpers are mmcv's own pure-PyTorch code, loaded by executing only
  ``mmcv/ops/point_sample.py`` (that file imports nothing but torch), so behaviour is
  identical to full mmcv;
* any other attribute is a placeholder class. Importing it succeeds (mmseg must be able to
  *import* ``sigmoid_focal_loss`` to import its loss package) and ``isinstance`` checks
  against it are simply False, but calling or instantiating it raises
  :class:`MmcvOpUnavailableError` naming the op and the way out (full mmcv built with ops).

When real compiled ops are importable the shim does nothing, so a GPU training environment
with full mmcv is unaffected.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["MmcvOpUnavailableError", "ensure_mmcv_ops", "shim_installed"]

_SHIM_FLAG = "__wsss_ops_shim__"
# Pure-PyTorch names mmcv defines in ops/point_sample.py; everything else needs _ext.
_POINT_SAMPLE_NAMES = (
    "bilinear_grid_sample",
    "normalize",
    "denormalize",
    "generate_grid",
    "rel_roi_point_to_abs_img_point",
    "get_shape_from_feature_map",
    "abs_img_point_to_rel_img_point",
    "rel_roi_point_to_rel_img_point",
    "point_sample",
    "SimpleRoIAlign",
)


class MmcvOpUnavailableError(ModuleNotFoundError):
    """A compiled mmcv op was used, but only mmcv-lite (no ``mmcv._ext``) is installed.

    Subclasses ``ModuleNotFoundError`` so code that guards ``from mmcv.ops import X`` with
    ``except ModuleNotFoundError``/``ImportError`` treats it like a missing op.
    """


class _UnavailableOp:
    """Placeholder for a compiled op: importable, never constructible or callable."""

    op_name = "<op>"

    def __new__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise MmcvOpUnavailableError(
            f"mmcv.ops.{cls.op_name} needs mmcv's compiled extension (mmcv._ext), which "
            "mmcv-lite does not ship; wsss_mmseg installed a minimal mmcv.ops that only "
            "provides point_sample. Install full mmcv built with ops "
            "(MMCV_WITH_OPS=1 pip wheel --no-build-isolation mmcv==2.1.0) to use it."
        )


def _compiled_ops_available() -> bool:
    """Whether ``mmcv._ext`` can be found (the same test as mmengine's ``mmcv_full_available``)."""
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except ImportError:
        return False


def _load_point_sample_module() -> types.ModuleType:
    """Execute only ``mmcv/ops/point_sample.py``, bypassing ``mmcv/ops/__init__.py``."""
    mmcv_spec = importlib.util.find_spec("mmcv")
    if mmcv_spec is None or not mmcv_spec.submodule_search_locations:
        raise ModuleNotFoundError("mmcv is not installed; install mmcv-lite==2.1.0 or mmcv")
    source = Path(next(iter(mmcv_spec.submodule_search_locations))) / "ops" / "point_sample.py"
    spec = importlib.util.spec_from_file_location("mmcv.ops.point_sample", source)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"cannot load mmcv's pure-PyTorch point_sample from {source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _make_ops_module(point_sample_module: types.ModuleType) -> types.ModuleType:
    ops = types.ModuleType("mmcv.ops", "Minimal mmcv.ops installed by wsss_mmseg.ops_shim (mmcv-lite, no _ext).")
    # A package-like module so `import mmcv.ops.point_sample` also resolves through sys.modules.
    ops.__path__ = []
    ops.__spec__ = importlib.machinery.ModuleSpec("mmcv.ops", loader=None, is_package=True)
    setattr(ops, _SHIM_FLAG, True)
    for name in _POINT_SAMPLE_NAMES:
        setattr(ops, name, getattr(point_sample_module, name))
    placeholders: dict[str, type] = {}

    def __getattr__(name: str) -> type:  # noqa: N807 - the shim module's PEP 562 __getattr__
        # Dunder/private lookups (copy, inspect, pickle) must get the usual AttributeError.
        if name.startswith("_"):
            raise AttributeError(f"module 'mmcv.ops' has no attribute {name!r}")
        if name not in placeholders:
            placeholders[name] = type(name, (_UnavailableOp,), {"op_name": name})
        return placeholders[name]

    ops.__getattr__ = __getattr__  # type: ignore[method-assign]
    return ops


def shim_installed() -> bool:
    """Whether ``sys.modules['mmcv.ops']`` is this module's minimal replacement."""
    return bool(getattr(sys.modules.get("mmcv.ops"), _SHIM_FLAG, False))


def ensure_mmcv_ops() -> bool:
    """Install the minimal ``mmcv.ops`` if compiled ops are missing; idempotent.

    Must run before the first ``import mmseg.models`` (``wsss_mmseg/__init__.py`` calls it
    first thing).

    Returns:
        True if the shim is in place (now or from an earlier call), False when real mmcv ops
        are used.
    """
    if shim_installed():
        return True
    if "mmcv.ops" in sys.modules or _compiled_ops_available():
        return False
    point_sample_module = _load_point_sample_module()
    ops = _make_ops_module(point_sample_module)
    sys.modules["mmcv.ops.point_sample"] = point_sample_module
    sys.modules["mmcv.ops"] = ops
    import mmcv

    mmcv.ops = ops
    return True
