"""Where did this mask come from? Lineage of one image across the pipeline's artifacts.

Reads what the stages record, through the catalog and the typed records: the manifest (input
hashes), HDF5 root and per-image attributes (params, weights identity, template, code version,
Prefect flow-run id), the pseudo summary, the model record (with its effective recipe), the
evaluation run, `dvc.lock` (the code versions DVC considers current) and the corrections store (a
human-corrected mask is what training used). The params of a stage are the ones its artifact
recorded (never dvc.lock's, which knows nothing of `params.local.yaml` or preset values); they are
compared with the current params as the stages load them (typed, `params.local.yaml` merged,
preset values applied). Stages are listed in the stage table's order. No DVC or Prefect import.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wsss.bounded_parsing import read_json_file, read_yaml_file
from wsss.catalog import ArtifactLayout, PseudoLayout
from wsss.datasets import ImageRecord, Manifest, manifest_sha256
from wsss.errors import WsssError
from wsss.io import CamStore
from wsss.io.records import EvaluationRun, ModelRecord, PseudoSummary
from wsss.stage_inputs import read_manifest_meta, recorded_dataset_name
from wsss.stages import STAGE_NAMES

CODE_FOLDERS = ("flows/", "tasks/", "src/")


def differing_keys(recorded: Any, current: Any, prefix: str = "", recorded_only: bool = False) -> list[str]:
    """Dotted keys whose values differ between two parsed params mappings (sorted).

    `recorded_only` compares only keys present in `recorded` (a stage that tracks a few keys
    of a section, like evaluate's `train.test_scales`, is not affected by the others).
    """
    if isinstance(recorded, dict) and isinstance(current, dict):
        keys = sorted(set(recorded) if recorded_only else set(recorded) | set(current), key=str)
        return [d for k in keys for d in differing_keys(recorded.get(k), current.get(k), f"{prefix}{k}.", recorded_only)]
    return [] if recorded == current else [prefix.rstrip(".") or "(all)"]


def _dvc_lock(root: Path) -> dict[str, Any]:
    path = root / "dvc.lock"
    return (read_yaml_file(path) or {}).get("stages", {}) if path.is_file() else {}


def _current_params(root: Path) -> dict[str, Any]:
    """Today's params as the stages record them (typed; params.local.yaml merged over params.yaml and
    every `auto` resolved for this machine, as every stage loads them), or as written when they do not check."""
    from wsss.machine_layout import resolve_auto
    from wsss.params import Params, read_params_mapping

    path = root / "params.yaml"
    raw = read_params_mapping(path) if path.is_file() else {}
    try:
        params = resolve_auto(Params.from_mapping(raw))
    except WsssError:
        return raw
    return {name: params.section_dict(name) for name in raw}


def _store_facts(store_dir: Path, image_id: str) -> dict[str, Any] | None:
    if not store_dir.is_dir() or image_id not in (store := CamStore(store_dir)):
        return None
    stored = store.read(image_id, names=[])
    attrs = store.root_attrs(stored.shard)
    upstream = attrs.get("upstream_cams") or {}
    return {
        "artifact": str(stored.shard),
        "image_attrs": dict(stored.attrs),
        "stage_params": attrs.get("params"),
        "params_sha256": attrs.get("params_sha256"),
        "clip": attrs.get("clip") or upstream.get("clip"),
        "template": attrs.get("template") or upstream.get("template"),
        "code_version": attrs.get("code_version"),
        "library_versions": attrs.get("library_versions"),
        "input_manifest_sha256": attrs.get("input_manifest_sha256"),
        "input_sha256": stored.attrs.get("source_sha256"),
        "content_key": stored.attrs.get("content_key"),
        "flow_run_id": attrs.get("flow_run_id"),
    }


def _pseudo_facts(layout: ArtifactLayout, image_id: str) -> dict[str, Any] | None:
    summary = PseudoSummary.read(layout.pseudo.summary)
    row = summary.row(image_id) if summary else None
    if summary is None or row is None:
        return None
    return {
        "artifact": str(layout.pseudo.output(PseudoLayout.MASKS, image_id)),
        "summary": row,
        "stage_params": {"pseudo": summary.params},
        "flow_run_id": summary.image_flow_run_id(image_id),
        "input_sha256": row.get("source_sha256"),
        "input_manifest_sha256": summary.input_manifest_sha256,
    }


def _train_facts(layout: ArtifactLayout) -> dict[str, Any] | None:
    model = ModelRecord.read(layout.model_record)
    if model is None:
        return None
    return {
        "artifact": model.checkpoint,
        "stage_params": {"train": model.params},
        "recipe": model.recipe,
        "flow_run_id": model.flow_run_id,
        "trained_on_manifest": model.input_manifest_sha256,
        "input_manifest_sha256": model.input_manifest_sha256,
    }


def _evaluate_facts(layout: ArtifactLayout, image_id: str) -> dict[str, Any]:
    run = EvaluationRun.read(layout.evaluation_run)
    return {
        "artifact": str(layout.metrics),
        "scored": bool(run and image_id in run.scored_images),
        "flow_run_id": run.flow_run_id if run else None,
        "code_version": run.code_version if run else None,
        "stage_params": run.params if run else None,
        "model": run.model if run else None,
        "input_manifest_sha256": run.input_manifest_sha256 if run else None,
    }


def _stage_facts(layout: ArtifactLayout, record: ImageRecord, digest: str, has_evaluate: bool) -> dict[str, dict[str, Any]]:
    image_id = record.image_id
    meta = read_manifest_meta(layout)
    stages: dict[str, dict[str, Any] | None] = {
        "prepare": {
            "artifact": str(layout.manifest),
            "dataset": recorded_dataset_name(meta),
            "manifest_sha256": digest,
            "input_sha256": record.sha256,
            "record": asdict(record) | {"tags": list(record.tags)},
            "stage_params": meta.get("params"),
        },
        "cams": _store_facts(layout.cams, image_id),
        "refine": _store_facts(layout.refined, image_id),
        "pseudo": _pseudo_facts(layout, image_id),
        "train": _train_facts(layout),
        "evaluate": _evaluate_facts(layout, image_id) if layout.metrics.is_file() or has_evaluate else None,
    }
    if layout.prompt_scores.is_file():
        scores = read_json_file(layout.prompt_scores)
        stages["prompts"] = {
            "artifact": str(layout.prompt_scores),
            "selected_template": scores.get("selected"),
            "pinned": scores.get("pinned"),
            "clip": scores.get("clip"),
            "stage_params": scores.get("params"),
        }
    return {name: stages[name] for name in STAGE_NAMES if stages.get(name)}  # type: ignore[misc]


def _add_dvc_and_params(facts: dict[str, Any], entry: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """What dvc.lock recorded for the stage (the code it ran, as hashed) and which of the params the
    artifact recorded differ from today's."""
    if entry:
        facts["dvc_lock"] = {key: entry.get(key) for key in ("cmd", "deps", "outs")}
        facts["code_deps"] = {d.get("path"): d.get("md5") for d in entry.get("deps") or [] if str(d.get("path", "")).startswith(CODE_FOLDERS)}
    recorded = facts.get("stage_params")
    if isinstance(recorded, dict):
        facts["params_differ_from_current"] = differing_keys(recorded, {k: current.get(k) for k in recorded}, recorded_only=True)


def image_lineage(image_id: str, root: Path | str = ".") -> dict[str, Any]:
    """Every recorded fact about how `image_id`'s maps and mask were produced.

    Raises:
        WsssError: the image is not in the manifest (or there is no manifest yet).
    """
    layout = ArtifactLayout(Path(root))
    if not layout.manifest.is_file():
        raise WsssError(f"{layout.manifest}: no manifest; run `dvc repro` (or the prepare stage) first")
    manifest = Manifest.from_json(layout.manifest.read_text(), str(layout.manifest))
    record = next((r for r in manifest.records if r.image_id == image_id), None)
    if record is None:
        raise WsssError(f"image {image_id!r} is not in {layout.manifest} ({len(manifest.records)} images)")
    digest, lock, current = manifest_sha256(manifest), _dvc_lock(layout.repo), _current_params(layout.repo)
    stages = _stage_facts(layout, record, digest, "evaluate" in lock)
    for name, facts in stages.items():
        _add_dvc_and_params(facts, lock.get(name), current)
    # Incremental runs leave unchanged shards (and their older manifest hash) in place, so a
    # different manifest is a problem only when this image's own bytes differ from the manifest's.
    problems = [
        f"{name}: made from manifest {facts['input_manifest_sha256'][:12]}, current is {digest[:12]}"
        for name, facts in stages.items()
        if facts.get("input_manifest_sha256") and facts["input_manifest_sha256"] != digest and facts.get("input_sha256") != record.sha256
    ]
    if stages.get("cams", {}).get("image_attrs", {}).get("source_sha256", record.sha256) != record.sha256:
        problems.append("cams: computed from different image bytes than the manifest's")
    return {"image_id": image_id, "stages": stages, "problems": problems, "correction": _correction(layout, record, len(manifest.class_names) + 1)}


def _correction(layout: ArtifactLayout, record: ImageRecord, num_classes: int) -> dict[str, Any] | None:
    """The human-corrected mask training used instead of the pseudo mask (with why not, when stale)."""
    from wsss.review.corrections import ImageSpec
    from wsss.review.training_labels import correction_lineage

    spec = ImageSpec(record.image_id, record.width, record.height, record.sha256)
    return correction_lineage(layout.corrections, record.image_id, spec, num_classes)


def format_lineage(lineage: dict[str, Any]) -> str:
    """Human-readable lineage, one block per stage."""
    lines = [f"lineage of {lineage['image_id']}"]
    correction = lineage.get("correction")
    if correction:  # training uses the human's mask, not the pseudo mask below
        stale = f" -- STALE, not used for training: {correction['stale']}" if correction.get("stale") else ""
        lines.append(f"mask: {correction['summary']} -> {correction['artifact']}{stale}")
    for stage, facts in lineage["stages"].items():
        lines.append(f"\n[{stage}] {facts.get('artifact', '')}")
        lines += _format_facts(stage, facts)
    lines.append("\nproblems: " + ("; ".join(lineage["problems"]) if lineage["problems"] else "none"))
    return "\n".join(lines)


def _format_facts(stage: str, facts: dict[str, Any]) -> list[str]:
    lines = [
        f"  {key}: {facts[key]}"
        for key in (
            "dataset",
            "manifest_sha256",
            "selected_template",
            "template",
            "params_sha256",
            "input_sha256",
            "content_key",
            "input_manifest_sha256",
            "flow_run_id",
        )
        if facts.get(key)
    ]
    if clip := facts.get("clip"):
        lines.append(f"  model: {clip.get('model_name')} weights={clip.get('weights')} sha256={clip.get('checkpoint_sha256')}")
    if code := facts.get("code_version"):
        lines.append(f"  code: {code.get('git_commit')}{' (dirty)' if code.get('git_dirty') else ''}")
    if facts.get("stage_params") is not None:
        lines.append(f"  params: {json.dumps(facts['stage_params'], sort_keys=True)}")
    else:
        lines.append("  params: not recorded by this artifact (written by an older version; rerun the stage)")
    if facts.get("recipe"):
        lines.append(f"  recipe (effective): {json.dumps(facts['recipe'], sort_keys=True)}")
    if "params_differ_from_current" in facts:
        lines.append("  differs from params.yaml (+ params.local.yaml): " + (", ".join(facts["params_differ_from_current"]) or "nothing"))
    if "flow_run_id" in facts and not facts["flow_run_id"]:
        lines.append("  flow_run_id: not recorded")
    if stage == "prepare":
        record = facts["record"]
        lines.append(f"  image: {record['image_path']} sha256={record['sha256']} tags={','.join(record['tags'])}")
    if facts.get("code_deps"):
        lines.append("  code (dvc.lock deps): " + ", ".join(f"{p}@{str(m)[:8]}" for p, m in sorted(facts["code_deps"].items())))
    if "dvc_lock" in facts:
        lines.append("  dvc.lock outs: " + ", ".join(f"{o.get('path')}@{str(o.get('md5'))[:12]}" for o in facts["dvc_lock"].get("outs") or []))
    return lines
