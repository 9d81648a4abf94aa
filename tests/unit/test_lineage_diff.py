"""`wsss lineage --diff`: changed masks between two revisions, from dvc.lock and DVC cache listings."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from wsss.cli import main
from wsss.errors import WsssError
from wsss.lineage import differing_keys
from wsss.lineage_diff import mask_diff


def cache_put(cache: Path, content: bytes, suffix: str = "") -> str:
    md5 = hashlib.md5(content, usedforsecurity=False).hexdigest() + suffix
    path = cache / "files" / "md5" / md5[:2] / md5[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return md5


def commit_revision(repo: Path, masks: dict[str, bytes], records: list[dict], box_threshold: float, message: str) -> None:
    """What `dvc repro` + `git commit` leave behind: dvc.lock in git, outputs in the cache."""
    cache = repo / ".dvc" / "cache"
    manifest = cache_put(cache, json.dumps({"records": records}).encode())
    prepare_dir = cache_put(cache, json.dumps([{"relpath": "manifest.json", "md5": manifest}]).encode(), ".dir")
    listing = [{"relpath": f"masks/{name}", "md5": cache_put(cache, data)} for name, data in sorted(masks.items())]
    pseudo_dir = cache_put(cache, json.dumps(listing).encode(), ".dir")
    lock = {
        "schema": "2.0",
        "stages": {
            "prepare": {"cmd": "python -m flows.prepare prepare", "outs": [{"path": "artifacts/prepare", "md5": prepare_dir}]},
            "refine": {
                "cmd": "python -m flows.refine",
                "params": {"params.yaml": {"caa": {"box_threshold": box_threshold}}},
                "deps": [{"path": "artifacts/cams", "md5": "c" * 32 + ".dir"}, {"path": "src/wsss/cam/caa.py", "md5": "d" * 32}],
            },
            "pseudo": {"cmd": "python -m flows.pseudo", "outs": [{"path": "artifacts/pseudo", "md5": pseudo_dir}]},
        },
    }
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
    subprocess.run(["git", "add", "dvc.lock"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", message], cwd=repo, check=True)


def rec(image_id: str, sha: str, tags: list[str]) -> dict:
    return {"image_id": image_id, "sha256": sha, "tags": tags}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    records = [rec("a", "1", ["cat"]), rec("b", "2", ["dog"]), rec("c", "3", ["cat"])]
    commit_revision(tmp_path, {"a.png": b"A", "b.png": b"B", "c.png": b"C"}, records, 0.4, "v1")
    records = [rec("a", "1", ["cat"]), rec("b", "2", ["dog", "person"]), rec("d", "4", ["cat"])]
    commit_revision(tmp_path, {"a.png": b"A", "b.png": b"B2", "d.png": b"D"}, records, 0.4, "v2")
    commit_revision(tmp_path, {"a.png": b"A3", "b.png": b"B2", "d.png": b"D"}, records, 0.5, "v3")
    return tmp_path


def test_diff_names_changed_masks_and_the_input_that_changed(repo: Path) -> None:
    diff = mask_diff(repo, "HEAD~2", "HEAD~1")
    assert diff["changed"] == {
        "b": {"status": "changed", "reasons": ["input tags changed"]},
        "c": {"status": "removed", "reasons": ["image removed from the dataset"]},
        "d": {"status": "added", "reasons": ["image added to the dataset"]},
    }
    assert diff["unchanged"] == 1 and diff["stage_changes"] == {}


def test_diff_names_the_params_that_changed(repo: Path, capsys: pytest.CaptureFixture) -> None:
    diff = mask_diff(repo, "HEAD~1", "HEAD")
    assert diff["changed"] == {"a": {"status": "changed", "reasons": ["refine: caa.box_threshold"]}}
    assert diff["stage_changes"] == {"refine": {"params": ["caa.box_threshold"], "deps": []}}
    assert main(["lineage", "--diff", "HEAD~1", "HEAD", "--root", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "a: changed - refine: caa.box_threshold" in out and "masks changed between HEAD~1 and HEAD: 1" in out


def test_diff_errors_name_the_revision_and_the_cache_file(repo: Path) -> None:
    with pytest.raises(WsssError, match="no-such-rev"):
        mask_diff(repo, "no-such-rev", "HEAD")
    for path in (repo / ".dvc" / "cache").rglob("*.dir"):
        path.unlink()
    with pytest.raises(WsssError, match=r"\.dir.*dvc fetch"):
        mask_diff(repo, "HEAD~1", "HEAD")


def test_differing_keys_are_dotted_and_sorted() -> None:
    assert differing_keys({"caa": {"x": 1, "y": 2}, "cam": 3}, {"caa": {"x": 1, "y": 5}, "cam": 3, "new": 1}) == ["caa.y", "new"]
