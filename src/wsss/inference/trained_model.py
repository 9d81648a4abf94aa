"""The trained segmenter as files: the plain checkpoint and the recipe `train` recorded beside it.

`artifacts/train/model.pth` holds only weights; which network they belong to (the mmseg config
file, the class list, the effective recipe) is what `train` wrote into `model.json`
(`wsss.io.records.ModelRecord`). `wsss predict` and `wsss export-model` take both from here,
checked before anything is loaded: no guessing the config from today's params.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wsss.datasets import file_sha256
from wsss.errors import StoreError
from wsss.io.records import ModelRecord


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint with its record, the config file named there, and the classes (background first)."""

    checkpoint: Path
    record_path: Path
    record: ModelRecord
    config: Path

    @classmethod
    def at(cls, checkpoint: Path | str, record_path: Path | str | None = None, repo: Path | str = ".") -> TrainedModel:
        """The model at `checkpoint` with its record (default: `model.json` beside it).

        The record's `train.config` is relative to `repo` (where the pipeline ran), unless absolute.

        Raises:
            StoreError: naming the file when the checkpoint, the record or the config file is
                missing, or the record is unreadable or lacks the class list.
        """
        checkpoint = Path(checkpoint)
        record_path = Path(record_path) if record_path is not None else checkpoint.with_name("model.json")
        if not checkpoint.is_file():
            raise StoreError(f"{checkpoint}: no trained model here (run the train stage, or pass --model)")
        record = ModelRecord.read(record_path)
        if record is None:
            raise StoreError(f"{record_path}: no model record beside the checkpoint (train writes model.json; pass --record)")
        if not record.class_names or not all(isinstance(name, str) for name in record.class_names):
            raise StoreError(f"{record_path}: the record names no class list")
        config = record.params.get("config") if isinstance(record.params, dict) else None
        if not isinstance(config, str) or not config:
            raise StoreError(f"{record_path}: the record names no train.config (the model's mmseg config)")
        config_path = Path(config) if Path(config).is_absolute() else Path(repo) / config
        if not config_path.is_file():
            raise StoreError(f"{record_path}: its config {config} is not under {Path(repo).resolve()} (pass --root)")
        return cls(checkpoint, record_path, record, config_path)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Every label's name, background first (label i is class_names[i])."""
        return tuple(self.record.class_names)

    def identity(self) -> dict[str, str]:
        """What names this model wherever it goes (ONNX metadata, overlay titles): file hashes and config."""
        return {"checkpoint_sha256": file_sha256(self.checkpoint), "config": str(self.record.params.get("config"))}
