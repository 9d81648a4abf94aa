"""JSON and YAML read from files (user data, other runs' artifacts): bounded, one clear error.

`json.loads` and `yaml.safe_load` recurse once per nesting level, so a file of a few thousand
`[` raises an uncaught `RecursionError` (issue 11, finding 9: safetensors metadata, tags
files); YAML aliases can also make a small file stand for a huge or self-referencing tree. These
functions parse, then measure the result without recursion (distinct containers once, cycles
refused) and raise :class:`ParseError` naming the source for syntax errors, nesting deeper than
`max_depth`, YAML standing for more than `max_nodes` values or JSON longer than `max_chars`.

A key written twice in one mapping or object is refused too (both loaders let the last one win
silently: a second `clip:` section would replace the first). Files are read by
:func:`read_text_file`: the byte size is checked against the limit of its kind before a byte is
read or decoded (YAML is parsed in pure Python at about 8 s per MB, so a 40 MB params file never
finished), and the bytes must be UTF-8 (a UTF-8 byte-order mark is dropped).
"""

from __future__ import annotations

import codecs
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from wsss.errors import WsssError

__all__ = [
    "MAX_DATASET_BYTES",
    "MAX_DEPTH",
    "MAX_PARAMS_BYTES",
    "MAX_RECORD_BYTES",
    "MAX_YAML_NODES",
    "ParseError",
    "check_bounded",
    "decode_text",
    "load_yaml",
    "loads_json",
    "read_bytes_file",
    "read_json_file",
    "read_text_file",
    "read_yaml_file",
    "unique_keys",
]

MAX_PARAMS_BYTES = 512 * 1024
"""Largest params file (params.yaml, params.local.yaml, `wsss demo --params`) and YAML record
(dvc.lock). They are written by hand: the shipped params.yaml is 11 kB and a class list as large as
LVIS's (1,203 classes with synonyms and dataset names) about 120 kB. The YAML safe loader runs in
pure Python at about 8 s per MB on the project's 2-core machine, so this bounds a parse to ~4 s."""
MAX_RECORD_BYTES = 512 * 2**20
"""Largest JSON record the pipeline wrote itself and reads back (manifest, summaries, reuse keys,
correction records, run logs): a manifest holds about 300 bytes per image, so this allows ~1.7
million images, while a damaged or planted file cannot make a stage parse gigabytes."""
MAX_DATASET_BYTES = 2 * 2**30
"""Largest dataset annotation file (COCO instances JSON, tags file, VOC XML, split list, a COCO
corrections file): COCO's instances_train2017.json is 448 MB, LVIS v1 train 1.1 GB."""

MAX_DEPTH = 64
"""Deepest nesting accepted; the project's own documents nest fewer than 10 levels."""
MAX_YAML_NODES = 10_000_000
"""Most values a YAML document may stand for, aliases counted each time they are reached
(JSON has no aliases: its size is what was read, bounded by `max_chars` where asked)."""


class ParseError(WsssError, ValueError):
    """A JSON or YAML text is malformed or larger/deeper than the limits; the message names its source."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's `object_pairs_hook` that refuses a key written twice in one object (json keeps the last)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        repeated = sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise ValueError(f"repeated keys {repeated} in one object (the last would silently replace the others)")
    return value


def loads_json(
    text: str | bytes,
    source: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_chars: int | None = None,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """`json.loads` with bounded size and nesting, repeated keys refused (`object_pairs_hook`, default
    :func:`unique_keys`, as json's; its ValueError is reported with the source).

    Raises:
        ParseError: naming `source`, with the line and column of a syntax error.
    """
    if max_chars is not None and len(text) > max_chars:
        raise ParseError(f"{source}: {len(text)} characters of JSON, more than the limit of {max_chars}")
    if isinstance(text, bytes):
        text = decode_text(text, source)
    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook or unique_keys)
    except RecursionError:
        raise ParseError(f"{source}: JSON nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as error:
        raise ParseError(f"{source}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except UnicodeDecodeError as error:
        raise ParseError(f"{source}: invalid JSON ({error})") from None
    except ValueError as error:  # from object_pairs_hook
        raise ParseError(f"{source}: {error}") from None
    return check_bounded(value, source, max_depth=max_depth)


def load_yaml(text: str, source: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_YAML_NODES) -> Any:
    """`yaml.safe_load` with bounded nesting and size (aliases included); a key written twice in
    one mapping is refused (naming its dotted path and both lines).

    Raises:
        ParseError: naming `source`.
    """
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # reads the text already: a NUL byte is refused here
        node = loader.get_single_node()
        if node is not None:
            _refuse_repeated_yaml_keys(loader, node, source)
        value = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise ParseError(f"{source}: YAML nested deeper than {max_depth} levels") from None
    except yaml.YAMLError as error:
        raise ParseError(f"{source}: invalid YAML ({error})") from None
    finally:
        if loader is not None:
            loader.dispose()
    return check_bounded(value, source, max_depth=max_depth, max_nodes=max_nodes)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _refuse_repeated_yaml_keys(loader: yaml.SafeLoader, root: yaml.Node, source: str) -> None:
    """ParseError when a mapping of the composed document holds one key twice.

    Walks the node graph before anything is constructed (iteratively, each node once, so aliases
    cost nothing); keys are compared as the constructor would build them (`<<` merge keys, which
    are meant to be overridden, are not keys).
    """
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(node.value))
        if not isinstance(node, yaml.MappingNode):
            continue
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                stack.append((value_node, path))
                continue
            key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            dotted = f"{path}.{key}" if path else str(key)
            line = key_node.start_mark.line + 1
            if key in lines:
                raise ParseError(
                    f"{source}: key {dotted!r} appears twice (lines {lines[key]} and {line}); the second would silently replace the first: keep one"
                )
            lines[key] = line
            stack.append((value_node, dotted))


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 bytes as text (a UTF-8 byte-order mark dropped); ParseError naming `source` otherwise."""
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if data.startswith(bom):
            raise ParseError(f"{source}: the file is {name} text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ParseError(f"{source}: the file is not UTF-8 text (byte {error.start}); save it as UTF-8") from None


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 // 10 else f"{size} bytes"


def read_bytes_file(path: Path | str, *, max_bytes: int, source: str | None = None) -> bytes:
    """The bytes of a file whose size is at most `max_bytes`, checked before it is read.

    Raises:
        ParseError: naming the file when it is larger than `max_bytes` (a file that grows while it
            is read, or a device, included).
        OSError: when it cannot be opened or read (callers say what it is).
    """
    source = source or str(path)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise ParseError(f"{source}: the file is {_mib(size)}, the limit for this kind of file is {_mib(max_bytes)}")
        data = handle.read(size)  # what the file system says it holds, in one allocation (read(n) allocates n)
        extra = handle.read(1)
        if extra:  # it grew, or it is a device that declares no size: read on in pieces, up to the limit
            buffer = bytearray(data + extra)
            while len(buffer) <= max_bytes and (more := handle.read(min(1 << 20, max_bytes + 1 - len(buffer)))):
                buffer += more
            data = bytes(buffer)
    if len(data) > max_bytes:
        raise ParseError(f"{source}: the file is more than {_mib(max_bytes)}, the limit for this kind of file")
    return data


def read_text_file(path: Path | str, *, max_bytes: int, source: str | None = None) -> str:
    """The text of a UTF-8 file of at most `max_bytes` (:func:`read_bytes_file`, :func:`decode_text`).

    Raises:
        ParseError: naming the file when it is too large or not UTF-8.
        OSError: when it cannot be opened or read.
    """
    source = source or str(path)
    return decode_text(read_bytes_file(path, max_bytes=max_bytes, source=source), source)


def read_json_file(path: Path | str, *, max_bytes: int = MAX_RECORD_BYTES, source: str | None = None, **options: Any) -> Any:
    """:func:`loads_json` of a file read by :func:`read_text_file` (`options` go to loads_json)."""
    source = source or str(path)
    return loads_json(read_text_file(path, max_bytes=max_bytes, source=source), source, **options)


def read_yaml_file(path: Path | str, *, max_bytes: int = MAX_PARAMS_BYTES, source: str | None = None) -> Any:
    """:func:`load_yaml` of a file read by :func:`read_text_file`."""
    source = source or str(path)
    return load_yaml(read_text_file(path, max_bytes=max_bytes, source=source), source)


def check_bounded(value: Any, source: str, *, max_depth: int = MAX_DEPTH, max_nodes: int | None = None) -> Any:
    """`value` itself when its nesting and expanded size are within the limits.

    Iterative depth-first walk: each distinct container is measured once (memo by identity),
    a container reached again while on the current path is a cycle.

    Raises:
        ParseError: naming `source`.
    """
    measured: dict[int, tuple[int, int]] = {}  # id -> (depth, expanded values)
    on_path: set[int] = set()
    keep_alive: list[Any] = []  # ids stay unique while their objects live
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, finished = stack.pop()
        if not isinstance(node, (dict, list, tuple)) or id(node) in measured:
            continue
        children = list(node.values()) if isinstance(node, dict) else list(node)
        if not finished:
            if id(node) in on_path:
                raise ParseError(f"{source}: the document refers to itself (a YAML alias inside its own anchor)")
            if len(on_path) >= max_depth:
                raise ParseError(f"{source}: nested deeper than {max_depth} levels")
            on_path.add(id(node))
            keep_alive.append(node)
            stack.append((node, True))
            stack.extend((child, False) for child in children)
            continue
        on_path.discard(id(node))
        depth, count = 1, 1
        for child in children:
            child_depth, child_count = measured[id(child)] if isinstance(child, (dict, list, tuple)) else (0, 1)
            depth = max(depth, 1 + child_depth)
            count += child_count
        if max_nodes is not None and count > max_nodes:
            raise ParseError(f"{source}: stands for more than {max_nodes} values (aliases expanded)")
        measured[id(node)] = (depth, count)
    return value
