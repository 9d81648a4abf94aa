"""HDF5 attribute encoding and name validation for the CAM store.

Numbers and numeric arrays keep their dtype, strings are fixed-length UTF-8 (inside checksummed
object headers), everything else is JSON behind a `json:` prefix; names are checked so that an
image id can never address another group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wsss.bounded_parsing import loads_json
from wsss.errors import StoreError

MAX_ATTR_BYTES = 64 * 1024
MAX_ID_LENGTH = 255
# Marks string attributes holding JSON; plain strings starting with it are JSON-encoded as well,
# so decoding is never ambiguous.
JSON_PREFIX = "json:"


def validate_name(name: object, what: str = "image id") -> str:
    """Return `name` if usable as an HDF5 group/dataset/attribute name, else raise StoreError."""
    if not isinstance(name, str):
        raise StoreError(f"{what} must be a string, got {type(name).__name__}: {name!r}")
    checks = (
        (not name or name == ".", "is empty or '.'"),
        ("/" in name, "contains '/'"),
        (".." in name, "contains '..'"),
        ("\x00" in name, "contains a NUL character"),
        (len(name) > MAX_ID_LENGTH, f"is longer than {MAX_ID_LENGTH} characters ({len(name)})"),
    )
    for failed, reason in checks:
        if failed:
            raise StoreError(f"{what} {name!r} {reason}")
    return name


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_attr(value: Any, name: str = "attribute") -> Any:
    """Encode a Python/numpy value as an HDF5 attribute value.

    Numbers and numeric arrays keep their numpy dtype; strings become fixed-length UTF-8 bytes,
    which live in the checksummed object header (not the unchecked global heap); anything else
    (dicts, lists, tuples, None, huge ints, empty or NUL-holding strings) becomes
    `"json:" + JSON`, so tuples and non-numeric arrays come back as lists.

    Raises:
        StoreError: the value cannot be encoded, or its encoding exceeds 64 KiB.
    """
    numeric = np.asarray(value) if isinstance(value, (int, float, np.generic, np.ndarray)) else None
    if isinstance(value, str) and value and "\x00" not in value and not value.startswith(JSON_PREFIX):
        encoded: Any = value.encode("utf-8")
    elif numeric is not None and numeric.dtype.kind in "biuf":
        encoded = numeric
    else:
        try:
            encoded = (JSON_PREFIX + json.dumps(value, sort_keys=True, default=_json_default)).encode("utf-8")
        except (TypeError, ValueError) as error:
            raise StoreError(f"attribute {name!r}: cannot encode {type(value).__name__} ({error})") from error
    size = len(encoded) if isinstance(encoded, bytes) else encoded.nbytes
    if size > MAX_ATTR_BYTES:
        raise StoreError(f"attribute {name!r} is {size} bytes encoded, over the {MAX_ATTR_BYTES}-byte limit")
    return encoded


def from_attr(value: Any) -> Any:
    """Decode an attribute value written by `to_attr` (JSON strings are parsed back)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return loads_json(value[len(JSON_PREFIX) :], "HDF5 attribute") if value.startswith(JSON_PREFIX) else value
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


def encode_attrs(attrs: Mapping[str, Any], where: str) -> list[tuple[str, Any]]:
    # Sorted, so equal mappings built in different orders give identical bytes.
    return [(validate_name(key, f"{where}: attribute name"), to_attr(attrs[key], key)) for key in sorted(attrs)]


def write_attrs(target: h5py.Group, encoded: list[tuple[str, Any]]) -> None:
    for key, value in encoded:
        if isinstance(value, bytes):
            target.attrs.create(key, data=value, dtype=h5py.string_dtype("utf-8", len(value)))
        else:
            target.attrs.create(key, data=value)


def read_attrs(target: h5py.Group) -> dict[str, Any]:
    return {key: from_attr(target.attrs[key]) for key in sorted(target.attrs)}
