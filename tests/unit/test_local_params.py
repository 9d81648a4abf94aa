"""The untracked params.local.yaml: merged over params.yaml by every stage, never written to it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wsss.errors import ConfigError
from wsss.local_params import merge_params
from wsss.params import load_params

ROOT = Path(__file__).resolve().parents[2]


def test_merge_keeps_sibling_keys() -> None:
    base = {"clip": {"random_init": False, "seed": 0}, "cam": {"max_side": 1024}}
    assert merge_params(base, {"clip": {"random_init": True}}) == {"clip": {"random_init": True, "seed": 0}, "cam": {"max_side": 1024}}
    assert base["clip"]["random_init"] is False  # the input is not modified


def test_stages_load_params_yaml_with_the_local_override(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    assert load_params(params).clip.random_init is False
    (tmp_path / "params.local.yaml").write_text("clip:\n  random_init: true\n")
    loaded = load_params(params)
    assert loaded.clip.random_init is True
    assert loaded.clip.model_name == yaml.safe_load(params.read_text())["clip"]["model_name"]


def test_a_bad_override_is_refused_naming_the_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "params.local.yaml").write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match=r"params\.local\.yaml: expected a mapping"):
        load_params(params)
    (tmp_path / "params.local.yaml").write_text("cam:\n  box_treshold: 0.5\n")
    with pytest.raises(ConfigError, match=r"params.yaml \(\+ params.local.yaml\): unknown key\(s\) cam.box_treshold"):
        load_params(params)


def shipped_params(tmp_path: Path) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    return params


@pytest.mark.parametrize("where", ["params.yaml", "params.local.yaml"])
def test_a_null_section_is_refused_naming_the_file_and_the_section(tmp_path: Path, where: str) -> None:
    """`clip: null` used to reset every clip key to its built-in default (allow_download true, random_init false)."""
    params = shipped_params(tmp_path)
    if where == "params.yaml":
        params.write_text("data: {kind: sample}\nclip: null\n")
    else:
        (tmp_path / where).write_text("clip: null\n")
    with pytest.raises(ConfigError, match=rf"{where.replace('.', '[.]')}: section 'clip' is null"):
        load_params(params)


def test_a_null_nested_section_is_refused_naming_the_key(tmp_path: Path) -> None:
    params = shipped_params(tmp_path)
    (tmp_path / "params.local.yaml").write_text("pseudo:\n  crf_params: null\n")
    with pytest.raises(ConfigError, match=r"params\.local\.yaml\): pseudo\.crf_params is null"):
        load_params(params)


@pytest.mark.parametrize(
    ("where", "text", "key"),
    [
        ("params.yaml", "clip:\n  seed: 3\n", "clip"),  # appended: a second clip section after the file's own
        ("params.local.yaml", "clip:\n  random_init: true\ncam: {}\nclip:\n  seed: 2\n", "clip"),
        ("params.local.yaml", "clip:\n  seed: 1\n  seed: 2\n", "clip.seed"),
    ],
)
def test_a_repeated_section_or_key_is_refused_naming_the_file_and_the_key(tmp_path: Path, where: str, text: str, key: str) -> None:
    params = shipped_params(tmp_path)
    target = tmp_path / where
    target.write_text((target.read_text() if target.exists() else "") + text)
    with pytest.raises(ConfigError, match=rf"{where.replace('.', '[.]')}: cannot read .*key '{key}' appears twice \(lines \d+ and \d+\)"):
        load_params(params)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("clip:\n  model_name: Vi\xe9\n".encode("latin-1"), r"the file is not UTF-8 text \(byte 22\)"),
        ("clip:\n  seed: 1\n".encode("utf-16"), r"the file is UTF-16 text; save it as UTF-8"),
        (b"clip:\n  seed: \x001\n", r"invalid YAML"),
    ],
)
def test_a_params_file_that_is_not_utf8_text_is_refused_naming_it(tmp_path: Path, content: bytes, reason: str) -> None:
    params = shipped_params(tmp_path)
    (tmp_path / "params.local.yaml").write_bytes(content)
    with pytest.raises(ConfigError, match=r"params\.local\.yaml: cannot read params overrides \(" + reason):
        load_params(params)


def test_bom_and_crlf_are_read(tmp_path: Path) -> None:
    params = shipped_params(tmp_path)
    (tmp_path / "params.local.yaml").write_bytes(b"\xef\xbb\xbfclip:\r\n  seed: 7\r\n")
    assert load_params(params).clip.seed == 7


def test_a_huge_params_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """4 MB took 32 s to parse and 40 MB never finished; the size is checked first (sparse: 0 bytes on disk)."""
    params = shipped_params(tmp_path)
    with open(tmp_path / "params.local.yaml", "wb") as handle:
        handle.truncate(40 * 2**20)
    with pytest.raises(
        ConfigError,
        match=r"params\.local\.yaml: cannot read params overrides \(the file is 40\.0 MB, "
        r"the limit for this kind of file is 0\.5 MB\)",
    ):
        load_params(params)
    params.write_text("clip:\n  seed: 1\n" + "# padding\n" * 60_000)
    (tmp_path / "params.local.yaml").unlink()
    with pytest.raises(ConfigError, match=r"params\.yaml: cannot read params \(the file is 0\.6 MB"):
        load_params(params)


def test_a_null_list_or_mapping_key_is_refused_naming_it(tmp_path: Path) -> None:
    params = shipped_params(tmp_path)
    (tmp_path / "params.local.yaml").write_text("prompts:\n  candidates: null\n")
    with pytest.raises(ConfigError, match=r"prompts\.candidates is null; give a list \(\[\] for none\)"):
        load_params(params)
    (tmp_path / "params.local.yaml").write_text("classes:\n  names: [cat]\n  synonyms: null\n")
    with pytest.raises(ConfigError, match=r"classes\.synonyms is null; give a mapping"):
        load_params(params)


def test_a_params_local_that_is_not_a_regular_file_is_refused_not_skipped(tmp_path: Path) -> None:
    """A folder or a link to /dev/zero in its place used to count as "no overrides"."""
    params = shipped_params(tmp_path)
    (tmp_path / "params.local.yaml").symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match=r"params\.local\.yaml: cannot read params overrides \(the file is more than 0\.5 MB"):
        load_params(params)
    (tmp_path / "params.local.yaml").unlink()
    (tmp_path / "params.local.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"params\.local\.yaml: cannot read params overrides \(.*Is a directory"):
        load_params(params)
