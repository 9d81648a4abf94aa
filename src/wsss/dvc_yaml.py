"""dvc.yaml's `cmd`, code `deps` and `params` of every stage, derived from the stage table.

What DVC reruns a stage for must be what the stage runs: its command (`flow_command`), the code
its process imports (`wsss.stage_code.dvc_code_deps`) and the params it reads (the table's,
plus `classes.preset` when the preset fixes one of its keys, `wsss.presets`). The artifact paths
are the catalog's (checked by tests/unit/test_architecture.py); `${data.root}`, `desc`, `outs`
and comments are dvc.yaml's own and kept as written.

    python -m wsss.dvc_yaml            # rewrite dvc.yaml's cmd, code deps and params
    python -m wsss.dvc_yaml --check    # exit 1 naming each stage that differs (tests do the same)

No DVC import: the file is read and written as text (its layout is this project's).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from wsss.presets import preset_sections
from wsss.stage_code import dvc_code_deps
from wsss.stages import STAGES, Stage, flow_command

CODE_PREFIXES = ("flows/", "tasks/", "src/", "${train.config}")
STAGE_LINE = re.compile(r"^  (?P<name>[a-z_]+):\s*$")
KEY_LINE = re.compile(r"^    (?P<key>[a-z_]+):(?P<value>.*)$")
ITEM_LINE = re.compile(r"^      - (?P<item>\S.*)$")


def dvc_params(entry: Stage) -> list[str]:
    """The params DVC tracks for a stage: its own, plus the preset when it fixes one of them."""
    sections = {key.split(".")[0] for key in entry.params}
    governed = bool(sections & set(preset_sections())) and "classes" not in sections
    return [*entry.params, *(["classes.preset"] if governed else [])]


def is_code(dep: str) -> bool:
    return dep.startswith(CODE_PREFIXES)


def expected(entry: Stage, repo: Path) -> dict[str, list[str] | str]:
    return {"cmd": flow_command(entry), "code": dvc_code_deps(entry, repo), "params": dvc_params(entry)}


def _blocks(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Stage name -> (first, end) line indexes of its block under `stages:`."""
    start = lines.index("stages:") + 1
    blocks, current = {}, None
    for index in range(start, len(lines) + 1):
        line = lines[index] if index < len(lines) else ""
        if index == len(lines) or (line and not line.startswith(" ") and not line.startswith("#")):
            if current:
                blocks[current[0]] = (current[1], index)
            break
        match = STAGE_LINE.match(line)
        if match:
            if current:
                blocks[current[0]] = (current[1], index)
            current = (match["name"], index)
    return blocks


def _list_span(block: list[str], key: str) -> tuple[int, int] | None:
    """(index of `key:`, end of its items) within a stage block, or None."""
    for index, line in enumerate(block):
        match = KEY_LINE.match(line)
        if match and match["key"] == key:
            end = index + 1
            while end < len(block) and (ITEM_LINE.match(block[end]) or block[end].startswith("          ")):
                end += 1
            return index, end
    return None


def rewrite_stage(block: list[str], entry: Stage, repo: Path) -> list[str]:
    """A stage block with the derived cmd, code deps (after the other deps) and params."""
    wanted = expected(entry, repo)
    block = [f"    cmd: {wanted['cmd']}" if KEY_LINE.match(line) and line.startswith("    cmd:") else line for line in block]
    deps = _list_span(block, "deps")
    if deps:
        kept = [line for line in block[deps[0] + 1 : deps[1]] if not ((item := ITEM_LINE.match(line)) and is_code(item["item"]))]
        block = [*block[: deps[0] + 1], *kept, *(f"      - {dep}" for dep in wanted["code"]), *block[deps[1] :]]
    params = _list_span(block, "params")
    lines = ["    params:", *(f"      - {key}" for key in wanted["params"])] if wanted["params"] else []
    if params:
        block = [*block[: params[0]], *lines, *block[params[1] :]]
    elif lines:
        after = (deps and _list_span(block, "deps")[1]) or 1  # type: ignore[index]
        block = [*block[:after], *lines, *block[after:]]
    return block


def rewritten(text: str, repo: Path) -> str:
    lines = text.splitlines()
    blocks = _blocks(lines)
    for entry in reversed(STAGES):  # from the end, so earlier indexes stay valid
        first, end = blocks[entry.name]
        lines[first:end] = rewrite_stage(lines[first:end], entry, repo)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dvc-yaml", default="dvc.yaml")
    parser.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml differs (write nothing)")
    args = parser.parse_args(argv)
    path = Path(args.dvc_yaml)
    current = path.read_text()
    wanted = rewritten(current, path.resolve().parent)
    if wanted == current:
        return 0
    if args.check:
        print(f"out of date: {path} (run `python -m wsss.dvc_yaml`)", file=sys.stderr)
        return 1
    path.write_text(wanted)
    print(f"rewrote: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
