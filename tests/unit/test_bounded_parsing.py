"""JSON/YAML read from files: deep nesting, alias bombs and self-references get one clear error.

(issue 11, finding 9) `json.loads`/`yaml.safe_load` raise an uncaught RecursionError on a few
thousand nested brackets; every loader below used to let it escape.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wsss.bounded_parsing import ParseError, load_yaml, loads_json
from wsss.errors import ConfigError, WsssError

DEEP_JSON = "[" * 100_000 + "]" * 100_000
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9)
)  # 10**10 values from 10 lines


def test_json_nesting_is_bounded_with_the_source_named() -> None:
    with pytest.raises(ParseError, match=r"tags\.json: JSON nested deeper than 64 levels"):
        loads_json(DEEP_JSON, "tags.json")
    # Deep enough to hurt later code, shallow enough for json.loads itself: still refused.
    with pytest.raises(ParseError, match=r"tags\.json: nested deeper than 64 levels"):
        loads_json("[" * 200 + "]" * 200, "tags.json")
    assert loads_json("[" * 64 + "]" * 64, "tags.json") is not None
    with pytest.raises(ParseError, match=r"tags\.json: invalid JSON at line 2 column 1"):
        loads_json('{"a":\n', "tags.json")
    with pytest.raises(ParseError, match="more than the limit of 10"):
        loads_json('"' + "x" * 20 + '"', "m", max_chars=10)


def test_yaml_nesting_aliases_and_self_references_are_bounded() -> None:
    with pytest.raises(ParseError, match=r"params\.yaml: YAML nested deeper"):
        load_yaml("[" * 5000, "params.yaml")
    with pytest.raises(ParseError, match=r"params\.yaml: stands for more than 10000000 values"):
        load_yaml(ALIAS_BOMB, "params.yaml")
    with pytest.raises(ParseError, match=r"params\.yaml: the document refers to itself"):
        load_yaml("a: &a [1, *a]\n", "params.yaml")
    shared = load_yaml("base: &b {lr: 0.1}\ntrain: {opt: *b}\neval: {opt: *b}\n", "params.yaml")
    assert shared["train"]["opt"] == {"lr": 0.1}  # a shared (not self-referencing) alias is fine


def test_core_loaders_refuse_deep_nesting_instead_of_crashing(tmp_path: Path) -> None:
    """Each used to raise RecursionError: run lock owner, pseudo reuse keys, relabel log, lineage,
    params (every stage's and the demo's), HDF5 attributes."""
    from wsss.catalog import PseudoLayout
    from wsss.io.attributes import from_attr
    from wsss.io.pseudo_store import PseudoMaskStore
    from wsss.params import load_params
    from wsss.relabel.history import read_run_log
    from wsss.run_lock import parse_owner

    assert parse_owner(DEEP_JSON) is None  # an unreadable owner record, as a half-written one

    store = PseudoMaskStore(PseudoLayout(tmp_path / "pseudo"))
    store.layout.folder(PseudoLayout.KEYS).mkdir(parents=True)
    store.layout.output(PseudoLayout.KEYS, "img").write_text(DEEP_JSON)
    assert store.reusable_row("img", "k") is None  # recomputed, not a crash
    with pytest.raises(WsssError, match=r"HDF5 attribute: JSON nested deeper"):
        from_attr("json:" + DEEP_JSON)

    log = tmp_path / "runs.jsonl"
    log.write_text(DEEP_JSON + "\n" + json.dumps({"run": 2}) + "\n")
    with pytest.raises(WsssError, match=r"runs\.jsonl: line 1: JSON nested deeper"):
        read_run_log(log)

    params = tmp_path / "params.yaml"
    params.write_text(ALIAS_BOMB)
    with pytest.raises(ConfigError, match=r"params\.yaml: cannot read params .*stands for more than"):
        load_params(params)
    (tmp_path / "params.local.yaml").write_text(ALIAS_BOMB)
    params.write_text("clip: {seed: 1}\n")
    with pytest.raises(ConfigError, match=r"params\.local\.yaml: cannot read params overrides .*stands for more than"):
        load_params(params)


def test_lineage_refuses_a_deep_summary_naming_it(tmp_path: Path) -> None:
    from wsss.io.records import PseudoSummary

    path = tmp_path / "summary.json"
    path.write_text(DEEP_JSON)
    with pytest.raises(WsssError, match=r"summary\.json: cannot read the PseudoSummary record \(.*summary\.json: JSON nested deeper"):
        PseudoSummary.read(path)


def test_a_key_written_twice_is_refused_naming_its_path_and_lines() -> None:
    """Both loaders used to keep the last value silently (a second `clip:` section replaced the first)."""
    with pytest.raises(ParseError, match=r"p\.yaml: key 'clip' appears twice \(lines 1 and 3\)"):
        load_yaml("clip: {seed: 1}\ncam: {}\nclip: {seed: 2}\n", "p.yaml")
    with pytest.raises(ParseError, match=r"p\.yaml: key 'a\[0\]\.k' appears twice"):
        load_yaml("a:\n  - {k: 1, k: 2}\n", "p.yaml")
    with pytest.raises(ParseError, match=r"x\.json: repeated keys \['images'\]"):
        loads_json('{"images": [], "annotations": [], "images": [1]}', "x.json")
    # A merge key is meant to be overridden: not a repetition.
    assert load_yaml("base: &b {lr: 1, m: 2}\nx:\n  <<: *b\n  lr: 3\n", "p.yaml")["x"] == {"lr": 3, "m": 2}


def test_files_are_bounded_in_bytes_before_reading_and_must_be_utf8(tmp_path: Path) -> None:
    from wsss.bounded_parsing import read_json_file, read_text_file

    sparse = tmp_path / "big.json"
    with open(sparse, "wb") as handle:
        handle.truncate(40 * 2**20)  # 40 MB declared, nothing on disk
    with pytest.raises(ParseError, match=r"big\.json: the file is 40\.0 MB, the limit for this kind of file is 1\.0 MB"):
        read_json_file(sparse, max_bytes=2**20)
    with pytest.raises(ParseError, match=r"zero: the file is more than 1\.0 MB, the limit for this kind of file"):
        read_text_file("/dev/zero", max_bytes=2**20, source="zero")  # size 0 in its header, endless when read
    (tmp_path / "latin.json").write_bytes('{"caf\xe9": 1}'.encode("latin-1"))
    with pytest.raises(ParseError, match=r"latin\.json: the file is not UTF-8 text \(byte 5\)"):
        read_json_file(tmp_path / "latin.json")
    (tmp_path / "bom.json").write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert read_json_file(tmp_path / "bom.json") == {"a": 1}
