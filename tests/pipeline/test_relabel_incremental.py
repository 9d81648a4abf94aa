"""Incremental relabeling in-process: only added/changed images are recomputed, other shards stay byte-identical."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.params_edit import edit_params, with_values, write_params
from tests.pipeline.relabel_data import DATASET, make_dataset, relabel_params, write_photo, write_tags
from tests.pipeline.repos import ROOT
from wsss.io.shard_assignment import stable_shard_index
from wsss.lineage import image_lineage

SHARDS = 16


def file_hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("shard-*.h5"))}


@pytest.mark.slow
def test_add_two_change_one_remove_one_recomputes_only_those(harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.relabel import relabel_flow

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, relabel_params(SHARDS))
    tags = make_dataset(tmp_path, ["astro_a", "cat_a", "cup_a", "rocket_a", "cat_b"])

    first = relabel_flow("params.yaml")
    assert first["counts"] == {"added": 5, "changed": 0, "removed": 0, "unchanged": 0}
    assert first["cams"]["computed"] == ["astro_a", "cat_a", "cat_b", "cup_a", "rocket_a"]
    cams_before, refined_before = file_hashes(tmp_path / "artifacts/cams"), file_hashes(tmp_path / "artifacts/refined")
    old_mask = (tmp_path / "artifacts/pseudo/masks/cat_a.png").read_bytes()

    # Add two images, change one image's tags, remove one.
    write_photo(tmp_path, "astro_b")
    write_photo(tmp_path, "rocket_b")
    tags.update(astro_b=("person",), rocket_b=("rocket",), cat_a=("cat", "person"))
    del tags["cup_a"]
    (tmp_path / DATASET / "images/cup_a.jpg").unlink()
    write_tags(tmp_path, tags)

    second = relabel_flow("params.yaml")
    touched = {"astro_b", "rocket_b", "cat_a", "cup_a"}
    assert second["counts"] == {"added": 2, "changed": 1, "removed": 1, "unchanged": 3}
    assert second["reasons"] == {"cat_a": ["tags"]}
    for stage in ("cams", "refine"):
        assert second[stage]["computed"] == ["astro_b", "cat_a", "rocket_b"], stage
    assert second["pseudo"] == ["astro_b", "cat_a", "rocket_b"]

    affected = {f"shard-{stable_shard_index(i, SHARDS):05d}.h5" for i in touched}
    cams_after, refined_after = file_hashes(tmp_path / "artifacts/cams"), file_hashes(tmp_path / "artifacts/refined")
    untouched = sorted(set(cams_before) - affected)
    assert untouched, "the test needs at least one shard without a changed image"
    for name in untouched:
        assert cams_after[name] == cams_before[name] and refined_after[name] == refined_before[name], name
    assert sorted(second["cams"]["untouched"]) == untouched
    # A shard whose only image was removed is gone; the store holds exactly the current images.
    expected_shards = {f"shard-{stable_shard_index(i, SHARDS):05d}.h5" for i in tags}
    assert set(cams_after) == expected_shards == set(refined_after)

    masks = tmp_path / "artifacts/pseudo/masks"
    assert not (masks / "cup_a.png").exists() and (masks / "astro_b.png").is_file()
    history = Path(second["archived"][0]).parents[1]
    assert (history / "masks/cat_a.png").read_bytes() == old_mask
    assert (history / "masks/cup_a.png").is_file() and not (history / "masks/cat_b.png").exists()
    summary = json.loads((tmp_path / "artifacts/pseudo/summary.json").read_text())
    assert [row["image_id"] for row in summary["images"]] == sorted(tags)

    # The review report follows every run (it stayed at the first run's images until `wsss review` ran by hand).
    reviewed = json.loads((tmp_path / "artifacts/review/triage.json").read_text())["images"]
    assert sorted(row["image_id"] for row in reviewed) == sorted(tags) and second["review"]["images"] == len(tags)

    runs = [json.loads(line) for line in (tmp_path / "artifacts/relabel/runs.jsonl").read_text().splitlines()]
    assert [run["counts"]["added"] for run in runs] == [5, 2]
    assert runs[1]["removed"] == ["cup_a"] and runs[1]["durations"]["total"] > 0

    lineage = image_lineage("astro_b", tmp_path)
    stages = lineage["stages"]
    assert list(stages) == ["prepare", "prompts", "cams", "refine", "pseudo"] and lineage["problems"] == []
    assert stages["cams"]["flow_run_id"] and stages["cams"]["input_sha256"] == stages["prepare"]["input_sha256"]
    assert stages["refine"]["params_differ_from_current"] == [] and stages["cams"]["clip"]["weights"].startswith("random-init")
    edit_params(tmp_path, {"caa.box_threshold": 0.5})
    assert image_lineage("astro_b", tmp_path)["stages"]["refine"]["params_differ_from_current"] == ["caa.box_threshold"]
    write_params(tmp_path, relabel_params(SHARDS))

    third = relabel_flow("params.yaml")
    assert third["counts"]["unchanged"] == 6 and third["cams"]["computed"] == [] and third["pseudo"] == []
    assert file_hashes(tmp_path / "artifacts/cams") == cams_after
    assert third["retrained"] is False  # relabel.retrain_share is null: never

    # Above relabel.retrain_share (1 of 6 images changed > 10 %), the run retrains and re-evaluates.
    config = relabel_params(SHARDS)["train"]["config"]
    edit_params(tmp_path, {"relabel.retrain_share": 0.1, "train.config": str(ROOT / config)})  # this workspace has no src/
    tags["rocket_a"] = ("rocket", "person")
    write_tags(tmp_path, tags)
    fourth = relabel_flow("params.yaml")
    assert fourth["counts"]["changed"] == 1 and fourth["retrained"] is True
    model = json.loads((tmp_path / "artifacts/train/model.json").read_text())
    assert (tmp_path / "artifacts/train/model.pth").is_file() and model["flow_run_id"]
    assert (tmp_path / "artifacts/metrics.json").is_file()
    # The review report follows every run (it stayed at the first run's images until `wsss review` ran by hand).
    reviewed = json.loads((tmp_path / "artifacts/review/triage.json").read_text())["images"]
    assert sorted(row["image_id"] for row in reviewed) == sorted(tags) and second["review"]["images"] == len(tags)

    runs = [json.loads(line) for line in (tmp_path / "artifacts/relabel/runs.jsonl").read_text().splitlines()]
    assert [run["retrained"] for run in runs] == [False, False, False, True] and "retrain" in runs[-1]["durations"]


@pytest.mark.slow
def test_an_image_that_vanishes_mid_run_is_reported_and_the_rest_is_relabeled(harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file disappears after `prepare` listed it: the run goes on without it (its failure report
    names it), and the next run, with the file back, relabels it."""
    import tasks.cams
    from flows.relabel import relabel_flow

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, with_values(relabel_params(4), {"reliability.max_failed_share": 0.5}))
    make_dataset(tmp_path, ["astro_a", "cat_a", "rocket_a"])
    photo = tmp_path / DATASET / "images/cat_a.jpg"
    kept = photo.read_bytes()
    original = tasks.cams.run_cams  # relabel finds it through the stage table

    def vanish_then_run(*args, **kwargs):
        photo.unlink()
        return original(*args, **kwargs)

    monkeypatch.setattr(tasks.cams, "run_cams", vanish_then_run)
    first = relabel_flow("params.yaml")
    assert sorted(first["failed"]) == ["cat_a"] and first["pseudo"] == ["astro_a", "rocket_a"]
    report = json.loads((tmp_path / "artifacts/cams/failures.json").read_text())
    assert [f["image"] for f in report["failures"]] == ["cat_a"] and "cat_a.jpg" in report["failures"][0]["reason"]
    masks = tmp_path / "artifacts/pseudo/masks"
    assert sorted(p.stem for p in masks.iterdir()) == ["astro_a", "rocket_a"]
    monkeypatch.setattr(tasks.cams, "run_cams", original)
    photo.write_bytes(kept)
    second = relabel_flow("params.yaml")
    assert second["counts"]["added"] == 1 and second["pseudo"] == ["cat_a"] and second["failed"] == {}
    assert not (tmp_path / "artifacts/cams/failures.json").exists()


def test_the_first_relabel_run_after_a_repro_counts_against_the_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `last_manifest.json` yet, masks made by the stage entries as `dvc repro` runs them: the
    first relabel run counts what differs from what the pseudo store says each mask was made
    from (one changed tag here), not every image as added, so it does not retrain."""
    import tasks.relabel
    from tasks.relabel import relabel_steps, run_relabel
    from tasks.stage_entries import stage_entry
    from wsss.catalog import ArtifactLayout
    from wsss.params import load_params

    monkeypatch.chdir(tmp_path)
    params_yaml = relabel_params(4)
    write_params(tmp_path, with_values(params_yaml, {"relabel.retrain_share": 0.5}))
    tags = make_dataset(tmp_path, ["astro_a", "cat_a", "rocket_a"])
    params = load_params("params.yaml")
    layout = ArtifactLayout.for_params(params)
    for step in relabel_steps():  # what `dvc repro pseudo` runs
        stage_entry(step)(params, layout)
    assert not layout.last_manifest.exists()

    retrained: list[str] = []
    monkeypatch.setattr(
        tasks.relabel,
        "stage_entry",
        lambda name: (lambda *args, **kwargs: retrained.append(name)) if name in tasks.relabel.RETRAIN else stage_entry(name),
    )
    write_tags(tmp_path, {**tags, "cat_a": ("cat", "person")})
    first = run_relabel(params, layout).details
    assert first["counts"] == {"added": 0, "changed": 1, "removed": 0, "unchanged": 2}
    assert first["reasons"] == {"cat_a": ["tags"]} and first["pseudo"] == ["cat_a"]
    assert first["retrained"] is False and retrained == []  # 1 of 3 changed is under retrain_share 0.5
    second = run_relabel(params, layout).details  # from now on against the manifest this run completed with
    assert second["counts"] == {"added": 0, "changed": 0, "removed": 0, "unchanged": 3}
