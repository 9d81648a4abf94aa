"""What produced an artifact: code version, library versions, parameter hashes.

Recorded in HDF5 root attributes and JSON summaries so that a mask can be traced back to the
model, prompts, parameters, code and input that made it. Nothing here depends on the time of
day: artifacts stay byte-identical when their inputs are.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace variation); paths become strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_of(value: Any) -> str:
    """SHA-256 of the canonical JSON of a value."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def code_version(directory: Path | str = ".") -> dict[str, Any]:
    """Git commit of `directory` and whether tracked files differ from it ("unknown" outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=True, timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def library_versions(names: tuple[str, ...] = ("torch", "open_clip_torch", "numpy", "h5py", "wsss")) -> dict[str, str]:
    """Installed versions of the libraries that shape the numbers."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def stage_attributes(stage: str, params: Mapping[str, Any], input_manifest_sha256: str, repo_dir: Path | str = ".", **extra: Any) -> dict[str, Any]:
    """Root attributes every artifact of a stage carries."""
    return {
        "stage": stage,
        "params": dict(params),
        "params_sha256": sha256_of(params),
        "code_version": code_version(repo_dir),
        "library_versions": library_versions(),
        "input_manifest_sha256": input_manifest_sha256,
        **extra,
    }
