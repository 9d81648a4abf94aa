"""JSON and YAML read from files (user data, other runs' artifacts): bounded, one clear error.

`json.loads` and `yaml.safe_load` recurse once per nesting level, so a file of a few thousand
`[` raises an uncaught `RecursionError` (issue 11, finding 9: safetensors metadata, tags
files); YAML aliases can also make a small file stand for a huge or self-referencing tree. These
functions parse, then measure the result without recursion (distinct containers once, cycles
refused) and raise :class:`ParseError` naming the source for syntax errors, nesting deeper than
`max_depth`, YAML standing for more than `max_nodes` values or JSON longer than `max_chars`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml

from wsss.errors import WsssError

__all__ = ["MAX_DEPTH", "MAX_YAML_NODES", "ParseError", "check_bounded", "loads_json", "load_yaml"]

MAX_DEPTH = 64
"""Deepest nesting accepted; the project's own documents nest fewer than 10 levels."""
MAX_YAML_NODES = 10_000_000
"""Most values a YAML document may stand for, aliases counted each time they are reached
(JSON has no aliases: its size is what was read, bounded by `max_chars` where asked)."""


class ParseError(WsssError, ValueError):
    """A JSON or YAML text is malformed or larger/deeper than the limits; the message names its source."""


def loads_json(
    text: str | bytes,
    source: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_chars: int | None = None,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """`json.loads` with bounded size and nesting (`object_pairs_hook` as json's; its ValueError is
    reported with the source).

    Raises:
        ParseError: naming `source`, with the line and column of a syntax error.
    """
    if max_chars is not None and len(text) > max_chars:
        raise ParseError(f"{source}: {len(text)} characters of JSON, more than the limit of {max_chars}")
    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook)
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
    """`yaml.safe_load` with bounded nesting and size (aliases included).

    Raises:
        ParseError: naming `source`.
    """
    try:
        value = yaml.safe_load(text)
    except RecursionError:
        raise ParseError(f"{source}: YAML nested deeper than {max_depth} levels") from None
    except yaml.YAMLError as error:
        raise ParseError(f"{source}: invalid YAML ({error})") from None
    return check_bounded(value, source, max_depth=max_depth, max_nodes=max_nodes)


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
