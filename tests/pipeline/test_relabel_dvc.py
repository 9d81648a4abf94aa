"""Through `dvc repro`: adding an image recomputes only its shard; the other shard files stay byte-identical."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from tests.params_edit import write_params
from tests.pipeline.relabel_data import make_dataset, relabel_params, write_photo, write_tags
from tests.pipeline.repos import make_pipeline_repo, pipeline_env, run
from wsss.io.shard_assignment import stable_shard_index

SHARDS = 4


def hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("shard-*.h5"))}


@pytest.mark.slow
def test_dvc_repro_after_adding_an_image_rewrites_only_its_shard(prefect_server: str, tmp_path: Path) -> None:
    repo = make_pipeline_repo(tmp_path / "repo")
    write_params(repo, relabel_params(SHARDS))
    tags = make_dataset(repo, ["astro_a", "cat_a", "cup_a"])
    env = pipeline_env(repo, prefect_server)
    dvc = [sys.executable, "-m", "dvc"]
    run([*dvc, "repro", "refine"], repo, env)
    cams, refined = hashes(repo / "artifacts/cams"), hashes(repo / "artifacts/refined")

    write_photo(repo, "rocket_a")
    write_tags(repo, {**tags, "rocket_a": ("rocket",)})
    output = run([*dvc, "repro", "refine"], repo, env).stdout
    assert "Running stage 'cams'" in output and "Running stage 'refine'" in output
    new_shard = f"shard-{stable_shard_index('rocket_a', SHARDS):05d}.h5"
    cams_after, refined_after = hashes(repo / "artifacts/cams"), hashes(repo / "artifacts/refined")
    for before, after in ((cams, cams_after), (refined, refined_after)):
        assert new_shard in after and after.get(new_shard) != before.get(new_shard)
        assert {n: h for n, h in after.items() if n != new_shard} == {n: h for n, h in before.items() if n != new_shard}
