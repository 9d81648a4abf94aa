"""Small checks the inference commands share; light to import (argparse-time modules import it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wsss.errors import ConfigError, WsssError


def checked(option: str, make: Callable[[], Any]) -> Any:
    """The value `make()` builds with the params' validation; its error prefixed with the option."""
    try:
        return make()
    except ConfigError as error:
        raise ConfigError(f"{option}: {error}") from None


def mmseg_module(name: str) -> Any:
    """A `wsss_mmseg` module; a clear error where the mmseg extra is not installed."""
    import importlib

    try:
        return importlib.import_module(f"wsss_mmseg.{name}")
    except ImportError as error:
        raise WsssError(f"this command needs MMSegmentation (pip install -e .[mmseg]): {error}") from None
