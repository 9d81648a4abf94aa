"""Readers of what one stage hands the next: the manifest (and what prepare recorded beside it),
the selected template, the ground truth.

Every stage entry (and lineage, review, relabel) reads these through here, so no stage entry
imports another to read an upstream output, and each has one clear error naming the file and
the stage that writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wsss.bounded_parsing import MAX_RECORD_BYTES, read_json_file, read_text_file
from wsss.catalog import ArtifactLayout
from wsss.datasets import GroundTruthFiles, Manifest
from wsss.datasets.settings import dataset_name
from wsss.errors import ConfigError, DatasetError
from wsss.params import Params


def read_manifest(layout: ArtifactLayout) -> Manifest:
    """The manifest `prepare` wrote; a clear error when there is none."""
    try:
        return Manifest.from_json(read_text_file(layout.manifest, max_bytes=MAX_RECORD_BYTES), str(layout.manifest))
    except OSError as error:
        raise DatasetError(f"{layout.manifest}: cannot read the manifest ({error.strerror or error}); run the prepare stage") from error


def read_manifest_meta(layout: ArtifactLayout) -> dict[str, Any]:
    """What `prepare` recorded beside the manifest (root, kind, dataset name, ground-truth census,
    params); {} before any prepare run."""
    if not layout.manifest_meta.is_file():
        return {}
    try:
        meta = read_json_file(layout.manifest_meta)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{layout.manifest_meta}: unreadable ({error}); run the prepare stage") from error
    return meta if isinstance(meta, dict) else {}


def recorded_dataset_name(meta: dict[str, Any]) -> str | None:
    """The dataset's one name from `read_manifest_meta` (computed from root and kind for a meta
    written before the name was recorded); None without a prepare run."""
    if isinstance(meta.get("dataset"), str):
        return meta["dataset"]
    return dataset_name(str(meta["root"]), str(meta.get("kind", ""))) if meta.get("root") else None


def selected_template(layout: ArtifactLayout) -> str:
    """The template the prompts stage selected (the one owner of the template)."""
    try:
        return str(read_json_file(layout.prompt_scores)["selected"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{layout.prompt_scores}: cannot read the selected template ({error}); run the prompts stage") from error


def ground_truth_files(params: Params, layout: ArtifactLayout) -> GroundTruthFiles:
    """The one GT reader of every stage: dataset masks under the data root, derived (COCO) masks in
    the catalog's folder (`manifest` records say which)."""
    return GroundTruthFiles(params.dataset_root, layout.ground_truth)


def check_classes(params: Params, class_names: Sequence[str]) -> None:
    """The params' class list must be the manifest's (the dataset's)."""
    ours, theirs = tuple(params.vocabulary.class_names), tuple(class_names)
    if ours != theirs:
        raise ConfigError(
            f"classes in params ({len(ours)}: {', '.join(ours[:5])}, ...) differ from the dataset manifest's "
            f"({len(theirs)}: {', '.join(theirs[:5])}, ...); set `classes` to the dataset's classes"
        )
