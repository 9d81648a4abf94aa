"""What people watch and search in Prefect: progress artifacts on the clock, log lines with rate and
ETA, flow-run names and tags, distinct task-run names (under the `harness` fixture)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

import tasks.progress
from tasks.progress import Progress, duration_text
from tasks.run_names import params_digest
from tasks.runtime import named_step
from wsss.params import load_params


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def shards_of(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def test_progress_artifact_reaches_intermediate_values_on_uneven_shards(harness, monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[float] = []
    real_update = tasks.progress.update_progress_artifact

    def spy(artifact_id, progress, description=None):
        published.append(progress)
        return real_update(artifact_id, progress, description)

    monkeypatch.setattr(tasks.progress, "update_progress_artifact", spy)
    clock = Clock()

    @flow
    def seven_images_in_shards_of_three() -> None:
        progress = Progress("wsss-test-progress", "test", "cams", clock=clock, artifact_every_s=3.0)
        progress.start(7)
        for shard in shards_of([f"img{i}" for i in range(7)], 3):  # 3, 3, 1: no count is a multiple of 10
            clock.now += 4.0  # a shard takes longer than the artifact interval
            progress.advance(shard, "computed")
        progress.finish()

    seven_images_in_shards_of_three()
    assert any(0.0 < value < 100.0 for value in published), published
    assert published[-1] == 100.0 and published == sorted(published)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["wsss-test-progress"])))
    assert artifacts and artifacts[0].data == 100.0


def test_progress_artifact_waits_for_the_clock_between_updates(harness, monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[float] = []
    monkeypatch.setattr(tasks.progress, "update_progress_artifact", lambda artifact_id, value, description=None: published.append(value))
    clock = Clock()

    @flow
    def many_fast_images() -> None:
        progress = Progress("wsss-test-fast", "test", "refine", clock=clock, artifact_every_s=3.0)
        progress.start(100)
        for _ in range(100):
            clock.now += 0.5
            progress.tick(1, "computed")

    many_fast_images()
    # 50 s of work at one update per 3 s (plus the last): far fewer updates than images, last is 100.
    assert 10 <= len(published) <= 20 and published[-1] == 100.0


def test_log_lines_say_counts_rate_and_eta_then_what_was_done(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = Progress("wsss-test-log", "test", "cams", clock=clock, log_every_s=20.0, log_every_share=0.5, bar=False)
    with caplog.at_level(logging.INFO, logger="wsss"):
        progress.start(6)
        clock.now += 10.0
        progress.advance(["a"], "computed")  # 10 s, 1/6 < 50 %: no line yet
        clock.now += 15.0
        progress.advance(["b"], "computed")  # 25 s since the last line: a line
        progress.advance(["c", "d", "e", "f"], "copied")  # done: a line
        progress.finish("2 shards written")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "cams: 6 images to go through"
    assert lines[1] == "cams: 2/6 images (33 %), 0.08 image/s, ETA 50 s"
    assert lines[2].startswith("cams: 6/6 images (100 %)") and "ETA" not in lines[2]
    assert lines[3] == "cams: 6 images, 2 computed, 4 reused, 2 shards written in 25.0 s (0.24 image/s)"


def test_share_lines_keep_a_minimum_gap(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = Progress("wsss-test-gap", "test", "review", clock=clock, bar=False)
    with caplog.at_level(logging.INFO, logger="wsss"):
        progress.start(6)
        for _ in range(6):  # 1/6 each, far faster than a second apart
            clock.now += 0.01
            progress.tick()
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["review: 6 images to go through", "review: 6/6 images"]


def test_reach_counts_a_resumed_start_apart(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress("wsss-test-train", "test", "train", unit="iteration", clock=Clock(), bar=False)
    with caplog.at_level(logging.INFO, logger="wsss"):
        for done in (6, 7, 8, 9, 10):  # as the training hook calls it: before training, then per iteration
            progress.reach(done, 10, "trained" if progress.started else "resumed")
        progress.finish()
    assert progress.counts == {"resumed": 6, "trained": 4}
    assert caplog.records[-1].getMessage().startswith("train: 10 iterations, 6 resumed, 4 trained in 0.0 s")


def test_duration_text() -> None:
    assert [duration_text(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]


def test_stage_runs_are_named_and_tagged(harness, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.prepare import sample_flow
    from tasks.command import run_stage

    monkeypatch.setenv("DVC_EXP_NAME", "bold-yawl")
    ids: list[str] = []

    def sample_and_remember(args) -> None:
        state = sample_flow(args.params, return_state=True)
        ids.append(str(state.state_details.flow_run_id))

    assert run_stage({"sample": sample_and_remember}, ["--params", "params.yaml"]) == 0
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
    assert run.name == f"sample | sample | {params_digest(load_params('params.yaml'))}"
    assert set(run.tags) == {"dataset:sample", "stage:sample", "experiment:bold-yawl"}


def test_a_stage_run_under_a_parent_flow_run_is_its_subflow_run(harness, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`wsss run` names its flow run in WSSS_PARENT_FLOW_RUN_ID for the stage processes DVC starts:
    each stage's flow run hangs under it (a tracking task run in the parent, as Prefect's own subflows)."""
    from prefect.states import Running

    from flows.prepare import sample_flow
    from tasks.command import run_stage
    from tasks.parent_run import PARENT_FLOW_RUN_ENV

    @flow(name="wsss-test-parent")
    def parent() -> None:
        """Stands for the `wsss-run` flow of another process."""

    with get_client(sync_client=True) as client:
        parent_run = client.create_flow_run(parent, name="run | sample | test", state=Running())
    monkeypatch.setenv(PARENT_FLOW_RUN_ENV, str(parent_run.id))
    ids: list[str] = []

    def sample_and_remember(args) -> None:
        ids.append(str(sample_flow(args.params, return_state=True).state_details.flow_run_id))

    assert run_stage({"sample": sample_and_remember}, ["--params", "params.yaml"]) == 0
    with get_client(sync_client=True) as client:
        (child,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        assert child.parent_task_run_id is not None, "the stage's flow run is not a subflow run"
        tracking = client.read_task_run(child.parent_task_run_id)
    assert tracking.flow_run_id == parent_run.id and tracking.state.is_completed()  # the parent shows it done
    assert child.name.startswith("sample | sample | ") and child.state.is_completed()


def test_variants_are_distinct_task_runs(harness) -> None:
    @flow
    def score_both() -> list[int]:
        return [named_step(f"evaluate model crf={crf}", lambda crf=crf: len(crf)) for crf in ("off", "on")]

    state = score_both(return_state=True)
    assert state.result() == [3, 2]
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    assert sorted(r.name for r in runs) == ["evaluate model crf=off", "evaluate model crf=on"]


def test_artifact_files_are_repository_relative_code_or_served_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.runtime import file_reference

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WSSS_ARTIFACTS_URL", raising=False)
    assert file_reference(tmp_path / "artifacts/cams/shard-00000.h5") == "`artifacts/cams/shard-00000.h5`"
    assert file_reference("/elsewhere/x.json") == "`/elsewhere/x.json`"
    monkeypatch.setenv("WSSS_ARTIFACTS_URL", "http://127.0.0.1:8000/")
    assert file_reference("artifacts/plots/overlays/a b.png") == (
        "[`artifacts/plots/overlays/a b.png`](http://127.0.0.1:8000/artifacts/plots/overlays/a%20b.png)"
    )
    assert "file://" not in file_reference(tmp_path / "artifacts/metrics.json")
