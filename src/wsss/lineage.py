"""Where did this mask come from? Lineage of one image across the pipeline's artifacts.

Reads what the stages record: the manifest (input hashes), HDF5 root and per-image attributes
(params, weights identity, template, code version, Prefect flow-run id), the pseudo-mask and
model summaries, and `dvc.lock` (the versions DVC considers current). No DVC or Prefect import.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wsss.bounded_parsing import load_yaml, loads_json
from wsss.datasets import Manifest, manifest_sha256
from wsss.errors import WsssError
from wsss.io import CamStore

STAGE_ORDER = ("sample", "prepare", "prompts", "cams", "refine", "pseudo", "train", "evaluate")


def _json(path: Path) -> Any:
    return loads_json(path.read_text(), str(path)) if path.is_file() else None


def _dvc_lock(root: Path) -> dict[str, Any]:
    path = root / "dvc.lock"
    if not path.is_file():
        return {}
    return (load_yaml(path.read_text(), str(path)) or {}).get("stages", {})


def differing_keys(recorded: Any, current: Any, prefix: str = "", recorded_only: bool = False) -> list[str]:
    """Dotted keys whose values differ between two parsed params mappings (sorted).

    `recorded_only` compares only keys present in `recorded` (a stage that tracks a few keys
    of a section, like evaluate's `train.test_scales`, is not affected by the others).
    """
    if isinstance(recorded, dict) and isinstance(current, dict):
        keys = sorted(set(recorded) if recorded_only else set(recorded) | set(current), key=str)
        return [d for k in keys for d in differing_keys(recorded.get(k), current.get(k), f"{prefix}{k}.", recorded_only)]
    return [] if recorded == current else [prefix.rstrip(".") or "(all)"]


def _current_params(root: Path) -> dict[str, Any]:
    path = root / "params.yaml"
    return (load_yaml(path.read_text(), str(path)) or {}) if path.is_file() else {}


def _lock_params(entry: dict[str, Any]) -> dict[str, Any]:
    """dvc.lock records a stage's params as {params file: {dotted key: value}}; nest them again."""
    nested: dict[str, Any] = {}
    for values in (entry.get("params") or {}).values():
        for dotted, value in (values or {}).items():
            node = nested
            *parents, leaf = str(dotted).split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return nested


def _store_entry(store_dir: Path, image_id: str) -> dict[str, Any] | None:
    if not store_dir.is_dir():
        return None
    store = CamStore(store_dir)
    if image_id not in store:
        return None
    stored = store.read(image_id, names=[])
    attrs = store.root_attrs(stored.shard)
    return {
        "artifact": str(stored.shard),
        "image_attrs": {k: v for k, v in stored.attrs.items()},
        "stage_params": attrs.get("params"),
        "params_sha256": attrs.get("params_sha256"),
        "clip": attrs.get("clip") or (attrs.get("upstream_cams") or {}).get("clip"),
        "template": attrs.get("template") or (attrs.get("upstream_cams") or {}).get("template"),
        "code_version": attrs.get("code_version"),
        "library_versions": attrs.get("library_versions"),
        "input_manifest_sha256": attrs.get("input_manifest_sha256"),
        "input_sha256": stored.attrs.get("source_sha256"),
        "content_key": stored.attrs.get("content_key"),
        "flow_run_id": attrs.get("flow_run_id"),
    }


def image_lineage(image_id: str, root: Path | str = ".") -> dict[str, Any]:
    """Every recorded fact about how `image_id`'s maps and mask were produced.

    Raises:
        WsssError: the image is not in the manifest (or there is no manifest yet).
    """
    root = Path(root)
    artifacts = root / "artifacts"
    manifest_path = artifacts / "prepare" / "manifest.json"
    if not manifest_path.is_file():
        raise WsssError(f"{manifest_path}: no manifest; run `dvc repro` (or the prepare stage) first")
    manifest = Manifest.from_json(manifest_path.read_text(), str(manifest_path))
    record = next((r for r in manifest.records if r.image_id == image_id), None)
    if record is None:
        raise WsssError(f"image {image_id!r} is not in {manifest_path} ({len(manifest.records)} images)")
    digest = manifest_sha256(manifest)
    lock = _dvc_lock(root)
    stages: dict[str, Any] = {}
    stages["prepare"] = {"artifact": str(manifest_path), "manifest_sha256": digest, "input_sha256": record.sha256,
                         "record": asdict(record) | {"tags": list(record.tags)}}
    scores = _json(artifacts / "prompts" / "scores.json")
    if scores:
        stages["prompts"] = {"artifact": str(artifacts / "prompts" / "scores.json"), "selected_template": scores.get("selected"),
                             "pinned": scores.get("pinned"), "clip": scores.get("clip")}
    for stage, folder in (("cams", "cams"), ("refine", "refined")):
        entry = _store_entry(artifacts / folder, image_id)
        if entry:
            stages[stage] = entry
    summary = _json(artifacts / "pseudo" / "summary.json")
    if summary:
        row = next((r for r in summary.get("images", []) if r.get("image_id") == image_id), None)
        if row:
            stages["pseudo"] = {"artifact": str(artifacts / "pseudo" / "masks" / f"{image_id}.png"), "summary": row,
                                "stage_params": {"pseudo": summary.get("params")},
                                "flow_run_id": row.get("flow_run_id") or summary.get("flow_run_id"),
                                "input_sha256": row.get("source_sha256"), "input_manifest_sha256": summary.get("input_manifest_sha256")}
    model = _json(artifacts / "train" / "model.json")
    if model:
        stages["train"] = {"artifact": model.get("checkpoint"), "stage_params": {"train": model.get("params")},
                           "flow_run_id": model.get("flow_run_id"), "trained_on_manifest": model.get("input_manifest_sha256"),
                           "input_manifest_sha256": model.get("input_manifest_sha256")}
    metrics_path = artifacts / "metrics.json"
    if metrics_path.is_file() or "evaluate" in lock:
        run = _json(artifacts / "evaluation_run.json") or {}
        stages["evaluate"] = {"artifact": str(metrics_path), "scored": image_id in run.get("scored_images", []),
                              "flow_run_id": run.get("flow_run_id"), "code_version": run.get("code_version"),
                              "stage_params": run.get("params"), "model": run.get("model"),
                              "input_manifest_sha256": run.get("input_manifest_sha256")}
    current = _current_params(root)
    for name, facts in stages.items():
        if name in lock:
            facts["dvc_lock"] = {"cmd": lock[name].get("cmd"), "params": lock[name].get("params"),
                                 "deps": lock[name].get("deps"), "outs": lock[name].get("outs")}
            # The code a stage ran, as DVC hashed it (stages without a recorded git commit too).
            facts["code_deps"] = {d.get("path"): d.get("md5") for d in lock[name].get("deps") or []
                                  if str(d.get("path", "")).startswith(("flows/", "tasks/", "src/"))}
        recorded = facts.get("stage_params") or (_lock_params(lock[name]) if name in lock else None)
        if recorded is not None and facts.get("stage_params") is None:
            facts["stage_params"] = recorded
        if isinstance(recorded, dict):
            facts["params_differ_from_current"] = differing_keys(recorded, {k: current.get(k) for k in recorded}, recorded_only=True)
    # Incremental runs leave unchanged shards (and their older manifest hash) in place, so a
    # different manifest is a problem only when this image's own bytes differ from the manifest's.
    problems = [
        f"{name}: made from manifest {facts['input_manifest_sha256'][:12]}, current is {digest[:12]}"
        for name, facts in stages.items()
        if facts.get("input_manifest_sha256") and facts["input_manifest_sha256"] != digest
        and facts.get("input_sha256") != record.sha256
    ]
    cams = stages.get("cams", {}).get("image_attrs", {})
    if cams and cams.get("source_sha256") != record.sha256:
        problems.append("cams: computed from different image bytes than the manifest's")
    from wsss.review.corrections import ImageSpec
    from wsss.review.sources import ReviewLayout
    from wsss.review.training_labels import correction_lineage

    correction = correction_lineage(ReviewLayout(root).corrections, image_id,
                                    ImageSpec(record.image_id, record.width, record.height, record.sha256))
    return {"image_id": image_id, "stages": {s: stages[s] for s in STAGE_ORDER if s in stages}, "problems": problems,
            "correction": correction}


def format_lineage(lineage: dict[str, Any]) -> str:
    """Human-readable lineage, one block per stage."""
    lines = [f"lineage of {lineage['image_id']}"]
    correction = lineage.get("correction")
    if correction:  # training uses the human's mask, not the pseudo mask below
        stale = f" -- STALE, not used for training: {correction['stale']}" if correction.get("stale") else ""
        lines.append(f"mask: {correction['summary']} -> {correction['artifact']}{stale}")
    for stage, facts in lineage["stages"].items():
        lines.append(f"\n[{stage}] {facts.get('artifact', '')}")
        for key in ("manifest_sha256", "selected_template", "template", "params_sha256", "input_sha256", "content_key",
                    "input_manifest_sha256", "flow_run_id"):
            if facts.get(key):
                lines.append(f"  {key}: {facts[key]}")
        if facts.get("clip"):
            clip = facts["clip"]
            lines.append(f"  model: {clip.get('model_name')} weights={clip.get('weights')} sha256={clip.get('checkpoint_sha256')}")
        if facts.get("code_version"):
            code = facts["code_version"]
            lines.append(f"  code: {code.get('git_commit')}{' (dirty)' if code.get('git_dirty') else ''}")
        if facts.get("stage_params") is not None:
            lines.append(f"  params: {json.dumps(facts['stage_params'], sort_keys=True)}")
        if "params_differ_from_current" in facts:
            differ = facts["params_differ_from_current"]
            lines.append("  differs from params.yaml: " + (", ".join(differ) if differ else "nothing"))
        if "flow_run_id" in facts and not facts["flow_run_id"]:
            lines.append("  flow_run_id: not recorded")
        if stage == "prepare":
            record = facts["record"]
            lines.append(f"  image: {record['image_path']} sha256={record['sha256']} tags={','.join(record['tags'])}")
        if facts.get("code_deps"):
            lines.append("  code (dvc.lock deps): " + ", ".join(f"{p}@{str(m)[:8]}" for p, m in sorted(facts["code_deps"].items())))
        if "dvc_lock" in facts:
            outs = facts["dvc_lock"].get("outs") or []
            lines.append("  dvc.lock outs: " + ", ".join(f"{o.get('path')}@{str(o.get('md5'))[:12]}" for o in outs))
    lines.append("\nproblems: " + ("; ".join(lineage["problems"]) if lineage["problems"] else "none"))
    return "\n".join(lines)
