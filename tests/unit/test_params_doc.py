"""docs/parameters.md's table and params.yaml's comments are generated from the typed config and
cannot drift from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wsss.params_doc import TABLE_END, TABLE_START, commented_params, main, markdown_table, page_with_table, param_docs, yaml_keys

ROOT = Path(__file__).resolve().parents[2]


def test_docs_table_is_the_generated_one() -> None:
    page = (ROOT / "docs" / "parameters.md").read_text()
    assert page_with_table(page) == page, "docs/parameters.md's params table is stale: run `python -m wsss.params_doc`"


def test_params_yaml_comments_are_the_generated_ones() -> None:
    text = (ROOT / "params.yaml").read_text()
    assert commented_params(text) == text, "params.yaml's #: comments are stale: run `python -m wsss.params_doc`"


def test_every_params_yaml_key_is_documented_with_a_description() -> None:
    documented = {row.key: row for row in param_docs()}
    keys = yaml_keys(yaml.safe_load((ROOT / "params.yaml").read_text()), set(documented))
    assert keys and not [k for k in keys if k not in documented]
    assert not [row.key for row in param_docs() if not row.doc], "every field needs its `doc`"
    table = markdown_table()
    assert all(f"| `{key}` |" in table for key in keys)


def test_generated_comments_replace_stale_ones_and_keep_values_and_hand_comments() -> None:
    text = "# my note\n#: an outdated description\ncaa:\n  #: wrong\n  box_threshold: 0.7  # COCO\n"
    commented = commented_params(text)
    assert "outdated" not in commented and "wrong" not in commented
    assert "# my note\n" in commented and "  box_threshold: 0.7  # COCO\n" in commented
    assert (
        "  #: contour threshold as a fraction of the CAM max (0.4 VOC, 0.7 COCO) (float; range [0, 1]); "
        "null = the value classes.preset fixes (coco 0.7), else 0.4\n"
    ) in commented
    assert yaml.safe_load(commented) == yaml.safe_load(text)
    assert commented_params(commented) == commented


def test_table_rows_say_type_default_and_range() -> None:
    rows = {row.key: row for row in param_docs()}
    assert (rows["pseudo.background_alpha"].type, rows["pseudo.background_alpha"].range) == ("float", "(0, 100]")
    assert rows["train.max_iters"].type == "int | null" and rows["train.max_iters"].default == "null"
    assert rows["pseudo.crf_params.bilateral_sxy"].default == "67.0"
    assert rows["runner.kind"].type == "one of: sequential, dask"


def test_check_mode_reports_a_stale_page(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    readme, params = tmp_path / "parameters.md", tmp_path / "params.yaml"
    readme.write_text(f"intro\n{TABLE_START}\n| old |\n{TABLE_END}\nrest\n")
    params.write_text(commented_params((ROOT / "params.yaml").read_text()))
    assert main(["--page", str(readme), "--params", str(params), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err and "| old |" in readme.read_text()
    assert main(["--page", str(readme), "--params", str(params)]) == 0
    assert main(["--page", str(readme), "--params", str(params), "--check"]) == 0
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("\nrest\n")


def test_check_mode_names_a_page_without_markers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    readme, params = tmp_path / "parameters.md", tmp_path / "params.yaml"
    readme.write_text("no table here\n")
    params.write_text((ROOT / "params.yaml").read_text())
    assert main(["--page", str(readme), "--params", str(params), "--check"]) == 1
    assert f"{readme}: no parameter table markers" in capsys.readouterr().err
