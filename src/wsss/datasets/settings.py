"""The `data` params section: which dataset the pipeline labels (paths relative to the repository)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from wsss.errors import ConfigError
from wsss.settings import check_fields, setting


def dataset_name(root: str, kind: str) -> str:
    """The one name of a dataset, wherever it is shown (Prefect run names and tags, `prepare`'s
    manifest.meta.json, lineage, the review report): the root folder's name (`data/msrc` -> `msrc`,
    `data/coco128` -> `coco128`), or the kind when the root has no name (`.`).

    Not the manifest's `name` (a tags file's or an instances JSON's stem, `voc-<split>`), which
    stays as it is inside manifest.json: its hash is recorded by every store.
    """
    return Path(root).name or kind


@dataclass(frozen=True)
class DataSettings:
    """Dataset kind, root, split and the kind's own files."""

    SECTION: ClassVar[str] = "data"

    kind: Literal["sample", "voc", "coco", "folder"] = setting("sample", "sample (materialised by `sample`), voc, coco or folder")
    root: str = setting("data/sample", "dataset root")
    split: str = setting("train", "split name (VOC `ImageSets/Segmentation/<split>.txt`)")
    ground_truth_dir: str | None = setting(
        None,
        "folder of ground-truth PNGs under root (must exist when given); null = the kind's default: VOC "
        "`SegmentationClass` if present, COCO masks rasterised from the instances JSON, none for folders",
    )
    instances_json: str | None = setting(None, "COCO instances file under root")
    images_dir: str | None = setting(None, "COCO or folder datasets: image folder under root")
    tags_file: str | None = setting(None, "folder datasets: CSV (`image,tags` with `;`) or JSON under root")
    tags_from: Literal["annotations", "ground_truth"] = setting("annotations", "VOC tags from the `annotations` XML or from the `ground_truth` masks")

    @property
    def dataset_name(self) -> str:
        """This dataset's one name (`dataset_name`)."""
        return dataset_name(self.root, self.kind)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.tags_from == "ground_truth" and self.kind not in ("sample", "voc"):
            raise ConfigError(f"data.tags_from: ground_truth is only available for VOC layouts, not kind {self.kind!r}")
        if self.kind == "coco" and not (self.instances_json and self.images_dir):
            raise ConfigError("data.instances_json and data.images_dir are required for COCO")
        if self.kind == "folder" and not (self.images_dir and self.tags_file):
            raise ConfigError("data.images_dir and data.tags_file are required for folder datasets")
