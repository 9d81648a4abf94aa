"""The image arguments of `wsss predict` / `wsss segment`: folders, globs and file lists resolve to
files before any work; names that would collide or cannot name a file are per-image failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsss.errors import DatasetError
from wsss.failures import FailureReport
from wsss.inference.inputs import collect_images


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not decoded here")
    return path


def test_folders_globs_and_file_lists_in_order_without_repeats(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.png", "notes.txt", "deep/c.jpg", "deep/deeper/d.JPG"):
        touch(tmp_path / name)
    (tmp_path / "list.txt").write_text("# photos of today\n\ndeep/c.jpg\n  a.png  \n", encoding="utf-8")
    failures = FailureReport("predict")
    images = collect_images([str(tmp_path), str(tmp_path / "deep/**/*.JPG")], tmp_path / "list.txt", failures)
    # the folder (images only, sorted, not recursive), the recursive glob, the list (a.png is already there)
    assert [(i.name, i.path.relative_to(tmp_path).as_posix()) for i in images] == [
        ("a", "a.png"),
        ("b", "b.jpg"),
        ("d", "deep/deeper/d.JPG"),
        ("c", "deep/c.jpg"),
    ]
    assert not failures.failures


def test_colliding_and_unusable_names_fail_alone(tmp_path: Path) -> None:
    touch(tmp_path / "one/cat.jpg")
    touch(tmp_path / "two/cat.png")  # same output name
    touch(tmp_path / "two/Cat.jpeg")  # the same name on macOS/Windows
    touch(tmp_path / "two/dog.jpg")
    (tmp_path / "list.txt").write_text("bad\x00name.jpg\n" + "x" * 5000 + ".jpg\n")
    failures = FailureReport("predict")
    images = collect_images([str(tmp_path / "one"), str(tmp_path / "two")], tmp_path / "list.txt", failures)
    assert [i.path.relative_to(tmp_path).as_posix() for i in images] == ["one/cat.jpg", "two/dog.jpg"]
    reasons = [f.reason for f in failures.failures]
    assert len(reasons) == 4
    assert any("only by case or Unicode normalisation" in r for r in reasons)
    assert any("would overwrite those of" in r and "one/cat.jpg" in r for r in reasons)
    assert any("NUL character" in r for r in reasons) and any("File name too long" in r for r in reasons)
    assert all(len(r) < 400 for r in reasons)


@pytest.mark.parametrize(
    ("arguments", "file_list", "message"),
    [
        (["{root}/*.webp"], None, "the pattern matches no file"),
        (["{root}/empty"], None, "folder holds no image files"),
        ([], None, "no images given"),
        ([], "{root}/missing.txt", "file list not found"),
        ([], "{root}/latin1.txt", "file list: the file is not UTF-8"),
    ],
)
def test_usage_errors_name_the_argument(tmp_path: Path, arguments: list[str], file_list: str | None, message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "latin1.txt").write_bytes("caf\xe9.jpg\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=message):
        collect_images(
            [a.format(root=tmp_path) for a in arguments], Path(file_list.format(root=tmp_path)) if file_list else None, FailureReport("predict")
        )
