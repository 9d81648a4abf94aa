"""`wsss lineage --diff REV_A REV_B`: which pseudo masks changed between two revisions, and why.

DVC's `dvc.lock` is the record of versions: at each git revision (`git show REV:dvc.lock`) it
holds, per stage, the params values, the md5 of every dependency and of every output. Output
directories are `.dir` listings in the DVC cache (`<cache>/files/md5/ab/cdef...dir`: JSON list
of `{"relpath", "md5"}`), so the md5 of `artifacts/pseudo/masks/<id>.png` at each revision says
whether that mask changed; the manifest at each revision (also read from the cache) says whether
the image's bytes or tags changed; the stage params and deps in the two locks say what else did.
No DVC import: git is called as a subprocess and the cache is read as files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from wsss.bounded_parsing import load_yaml, read_json_file
from wsss.catalog import ArtifactLayout, PseudoLayout
from wsss.errors import WsssError
from wsss.lineage import differing_keys
from wsss.stages import upstream_of

# dvc.lock names outputs by their path relative to the repository, as the catalog does.
LAYOUT = ArtifactLayout()
PSEUDO_OUT, PREPARE_OUT = LAYOUT.pseudo.root.as_posix(), LAYOUT.prepare.as_posix()
MASK_DIR = PseudoLayout.MASKS
# Stages whose changes can change a pseudo mask, upstream first (the stage table's order).
MASK_STAGES = (*upstream_of("pseudo"), "pseudo")


def git_show(root: Path, revision: str, path: str) -> str:
    """Content of `path` at `revision`; a clear error when either does not exist."""
    result = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=root, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise WsssError(f"{root}: cannot read {path} at revision {revision!r} ({result.stderr.strip() or 'git failed'})")
    return result.stdout


def lock_at(root: Path, revision: str) -> dict[str, Any]:
    """The `stages` of dvc.lock at a revision."""
    return (load_yaml(git_show(root, revision, "dvc.lock"), f"dvc.lock at {revision}") or {}).get("stages", {})


def cache_file(cache: Path, md5: str) -> Path:
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def dir_listing(cache: Path, md5: str, what: str) -> dict[str, str]:
    """relpath -> md5 of a cached output directory (`md5` ends with `.dir`)."""
    path = cache_file(cache, md5)
    try:
        return {entry["relpath"]: entry["md5"] for entry in read_json_file(path)}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WsssError(f"{path}: cannot read the DVC cache listing of {what} ({error}); run `dvc fetch` for that revision") from error


def _out_md5(lock: dict[str, Any], stage: str, out_path: str) -> str | None:
    for out in (lock.get(stage) or {}).get("outs") or []:
        if out.get("path") == out_path:
            return out.get("md5")
    return None


def _stage_files(cache: Path, lock: dict[str, Any], stage: str, out_path: str) -> dict[str, str]:
    md5 = _out_md5(lock, stage, out_path)
    if md5 is None:
        return {}
    return dir_listing(cache, md5, out_path) if md5.endswith(".dir") else {Path(out_path).name: md5}


def _manifest_records(cache: Path, lock: dict[str, Any]) -> dict[str, dict[str, Any]]:
    files = _stage_files(cache, lock, "prepare", PREPARE_OUT)
    if LAYOUT.manifest.name not in files:
        return {}
    path = cache_file(cache, files[LAYOUT.manifest.name])
    try:
        records = read_json_file(path)["records"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WsssError(f"{path}: cannot read the cached manifest ({error})") from error
    return {r["image_id"]: {"sha256": r.get("sha256"), "tags": sorted(r.get("tags") or [])} for r in records}


def stage_changes(lock_a: dict[str, Any], lock_b: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Per mask-producing stage: params keys and dependencies whose recorded values differ."""
    changes = {}
    for stage in MASK_STAGES:
        a, b = lock_a.get(stage) or {}, lock_b.get(stage) or {}
        params = differing_keys(a.get("params") or {}, b.get("params") or {})
        deps_a = {d.get("path"): d.get("md5") for d in a.get("deps") or []}
        deps_b = {d.get("path"): d.get("md5") for d in b.get("deps") or []}
        artifacts = LAYOUT.artifacts.as_posix() + "/"
        deps = sorted(p for p in set(deps_a) | set(deps_b) if deps_a.get(p) != deps_b.get(p) and not str(p).startswith(artifacts))
        if params or deps:
            # dvc.lock keys params by file ("params.yaml.caa.box_threshold"): drop the file name.
            changes[stage] = {"params": [k.split(".yaml.", 1)[-1] for k in params], "deps": deps}
    return changes


def mask_diff(root: Path | str, revision_a: str, revision_b: str, cache: Path | str | None = None) -> dict[str, Any]:
    """Images whose pseudo mask differs between two revisions, each with the reasons found.

    Returns:
        {"revisions", "stage_changes", "changed": {id: {"status", "reasons"}}, "unchanged": count}.
    """
    root = Path(root)
    cache = Path(cache) if cache else root / ".dvc" / "cache"
    lock_a, lock_b = lock_at(root, revision_a), lock_at(root, revision_b)
    masks_a = {k.split("/", 1)[1]: v for k, v in _stage_files(cache, lock_a, "pseudo", PSEUDO_OUT).items() if k.startswith(MASK_DIR + "/")}
    masks_b = {k.split("/", 1)[1]: v for k, v in _stage_files(cache, lock_b, "pseudo", PSEUDO_OUT).items() if k.startswith(MASK_DIR + "/")}
    records_a, records_b = _manifest_records(cache, lock_a), _manifest_records(cache, lock_b)
    changes = stage_changes(lock_a, lock_b)
    upstream = [f"{stage}: {', '.join(c['params'] + c['deps'])}" for stage, c in changes.items()]
    changed = {}
    for name in sorted(set(masks_a) | set(masks_b)):
        if masks_a.get(name) == masks_b.get(name):
            continue
        image_id = name.rsplit(".", 1)[0]
        status = "added" if name not in masks_a else "removed" if name not in masks_b else "changed"
        reasons = []
        old, new = records_a.get(image_id), records_b.get(image_id)
        if old and new:
            reasons += [f"input {key} changed" for key in ("sha256", "tags") if old[key] != new[key]]
        reasons += upstream if status == "changed" else [f"image {status} {'to' if status == 'added' else 'from'} the dataset"]
        changed[image_id] = {"status": status, "reasons": reasons or ["no recorded input or params change (nondeterminism?)"]}
    return {
        "revisions": [revision_a, revision_b],
        "stage_changes": changes,
        "changed": changed,
        "unchanged": len(set(masks_a) & set(masks_b)) - sum(1 for c in changed.values() if c["status"] == "changed"),
    }


def format_mask_diff(diff: dict[str, Any]) -> str:
    a, b = diff["revisions"]
    lines = [f"masks changed between {a} and {b}: {len(diff['changed'])} ({diff['unchanged']} unchanged)"]
    for stage, change in diff["stage_changes"].items():
        lines.append(f"  [{stage}] params: {', '.join(change['params']) or '-'}; deps: {', '.join(change['deps']) or '-'}")
    for image_id, entry in diff["changed"].items():
        lines.append(f"{image_id}: {entry['status']} - {'; '.join(entry['reasons'])}")
    return "\n".join(lines)
