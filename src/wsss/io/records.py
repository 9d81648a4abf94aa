"""The JSON records stages write next to their outputs, typed: one writer and one reader each.

`PseudoSummary` (`pseudo/summary.json`), `ModelRecord` (`train/model.json`) and `EvaluationRun`
(`evaluation_run.json`) say what produced an artifact; the stage entries write them and lineage
reads them, both through these classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from wsss.bounded_parsing import read_json_file
from wsss.errors import StoreError
from wsss.io.atomic import write_json_atomic

Record = TypeVar("Record", bound="JsonRecord")


class JsonRecord:
    """A dataclass record stored as deterministic JSON; unknown keys of older files are ignored."""

    # Keys written even when None (others are left out then, so older files keep their shape).
    always: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None or key in self.always}  # type: ignore[call-overload]

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def read(cls: type[Record], path: Path) -> Record | None:
        """The record at `path`, or None when there is none yet."""
        if not path.is_file():
            return None
        try:
            data = read_json_file(path)
        except (OSError, ValueError) as error:  # ParseError included: syntax, nesting
            raise StoreError(f"{path}: cannot read the {cls.__name__} record ({error})") from error
        if not isinstance(data, dict):
            raise StoreError(f"{path}: a {cls.__name__} record must be a JSON object")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class PseudoSummary(JsonRecord):
    """One pass's pseudo masks: params, input manifest, the run that last wrote it, a row per image.

    `image_flow_run_ids` names, per image, the run that computed its mask (rows reused from an
    earlier run keep that run's id).
    """

    params: dict[str, Any]
    input_manifest_sha256: str
    flow_run_id: str | None
    images: list[dict[str, Any]] = field(default_factory=list)
    image_flow_run_ids: dict[str, str | None] = field(default_factory=dict)
    learned_prompts_sha256: str | None = None

    always = ("flow_run_id",)

    def row(self, image_id: str) -> dict[str, Any] | None:
        return next((row for row in self.images if row.get("image_id") == image_id), None)

    def image_flow_run_id(self, image_id: str) -> str | None:
        return self.image_flow_run_ids.get(image_id) or self.flow_run_id


@dataclass
class ModelRecord(JsonRecord):
    """The trained segmenter: checkpoint, effective recipe, what it was trained on, who trained it."""

    checkpoint: str
    trained_iterations: int
    num_images: int
    class_names: list[str]
    input_manifest_sha256: str
    pseudo_params: dict[str, Any] | None
    pseudo_flow_run_id: str | None
    params: dict[str, Any]
    flow_run_id: str | None
    recipe: dict[str, Any] = field(default_factory=dict)  # effective config values (file + train.* overrides)
    corrections: dict[str, Any] | None = None  # human corrections used instead of pseudo masks (used, stale, digest)
    architecture: dict[str, Any] | None = None  # segmentor, backbone, head, normalisation (`wsss_mmseg.recipe.model_description`)
    config_sha256: str | None = None  # the mmseg config file as trained
    init_weights: dict[str, Any] | None = None  # train.init_checkpoint (path, SHA-256); None: random initialisation

    always = ("pseudo_params", "pseudo_flow_run_id", "flow_run_id")


@dataclass
class EvaluationRun(JsonRecord):
    """Who computed `metrics.json` (which stays numbers only for `dvc metrics`): run, code, params, inputs."""

    flow_run_id: str | None
    code_version: dict[str, Any]
    params: dict[str, Any]
    input_manifest_sha256: str
    model: str | None
    scored_images: list[str] = field(default_factory=list)
    overlay_ids_not_found: list[str] = field(default_factory=list)  # `evaluate.overlay_ids` naming no image

    always = ("flow_run_id", "model")
