"""prepare: materialise the embedded sample and write the manifest of the configured dataset."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from tasks.common import MANIFEST, write_json
from wsss.config import DataSettings
from wsss.datasets import Manifest, load_coco, load_folder, load_voc, manifest_sha256, materialize_sample

SAMPLE_DIR = Path("data/sample")


@task(retries=2, retry_delay_seconds=1, cache_policy=NONE)
def materialize_sample_task(destination: Path = SAMPLE_DIR) -> Manifest:
    """Write the registry-package photos in VOC layout (byte-identical on every run)."""
    return materialize_sample(destination)


@task(retries=2, retry_delay_seconds=1, cache_policy=NONE)
def build_manifest(data: DataSettings, class_names: tuple[str, ...]) -> Manifest:
    """The manifest of the dataset named by the `data` section (the sample is a VOC tree)."""
    root = Path(data.root)
    if data.kind in ("sample", "voc"):
        return load_voc(root, data.split, class_names, data.ground_truth_dir)
    if data.kind == "coco":
        if not data.instances_json or not data.images_dir:
            raise ValueError("data.instances_json and data.images_dir are required for COCO")
        return load_coco(root, data.instances_json, data.images_dir, class_names, data.ground_truth_dir)
    if not data.images_dir or not data.tags_file:
        raise ValueError("data.images_dir and data.tags_file are required for folder datasets")
    return load_folder(root, data.images_dir, data.tags_file, class_names)


@task(cache_policy=NONE)
def write_manifest(manifest: Manifest, data: DataSettings, path: Path = MANIFEST) -> str:
    """Write the manifest (+ its hash and the dataset root); returns the hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest.to_json())
    digest = manifest_sha256(manifest)
    write_json(path.with_name("manifest.meta.json"), {"root": data.root, "kind": data.kind, "sha256": digest,
                                                      "num_images": len(manifest.records)})
    return digest
