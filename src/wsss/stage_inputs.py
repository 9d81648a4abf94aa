"""Readers of what one stage hands the next: the manifest, the selected template, the ground truth.

Every stage entry (and lineage, review, relabel) reads these through here, so no stage entry
imports another to read an upstream output, and each has one clear error naming the file and
the stage that writes it.
"""

from __future__ import annotations

from wsss.bounded_parsing import MAX_RECORD_BYTES, read_json_file, read_text_file
from wsss.catalog import ArtifactLayout
from wsss.datasets import GroundTruthFiles, Manifest
from wsss.errors import ConfigError, DatasetError
from wsss.params import Params


def read_manifest(layout: ArtifactLayout) -> Manifest:
    """The manifest `prepare` wrote; a clear error when there is none."""
    try:
        return Manifest.from_json(read_text_file(layout.manifest, max_bytes=MAX_RECORD_BYTES), str(layout.manifest))
    except OSError as error:
        raise DatasetError(f"{layout.manifest}: cannot read the manifest ({error.strerror or error}); run the prepare stage") from error


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
