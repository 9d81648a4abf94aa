"""train: DeepLabV2 (MMSegmentation) on the pseudo masks with the confidence-guided loss.

The mmseg config file is the recipe; `train.*` keys override single values only when set.
Training runs in a scratch work dir keyed by its inputs, so an interrupted run resumes from its
last checkpoint (mmengine `resume`) even though DVC empties the stage output first; the final
checkpoint and log are then copied into the output, with `model.json` recording what was trained,
on what, with which effective recipe.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tasks.prepare import read_manifest
from tasks.runtime import flow_run_id
from wsss.catalog import ArtifactLayout, PseudoLayout
from wsss.datasets import Manifest, manifest_sha256
from wsss.io.atomic import copy_file_atomic, write_text_atomic
from wsss.io.pseudo_store import PseudoMaskStore
from wsss.io.records import ModelRecord
from wsss.params import Params
from wsss.provenance import sha256_of
from wsss.training import common_image_dir
from wsss.viz import voc_palette


def train_config(params: Params, layout: ArtifactLayout, manifest: Manifest, work_dir: Path, split_file: Path) -> Any:
    """The mmengine config of this run: the file's recipe with the set `train.*` keys on top."""
    from wsss_mmseg.training import build_train_config

    settings = params.train
    folder, suffix = common_image_dir(manifest)
    class_names = ["background", *manifest.class_names]
    return build_train_config(
        Path(settings.config).resolve(),
        work_dir.resolve(),
        data_root=Path(".").resolve(),
        image_dir=str(params.dataset_root / folder),
        mask_dir=str(layout.pseudo.folder(PseudoLayout.MASKS)),
        confidence_dir=str(layout.pseudo.folder(PseudoLayout.CONFIDENCE)) if settings.use_confidence else None,
        split_file=str(split_file.resolve()),
        class_names=class_names,
        palette=[list(map(int, c)) for c in voc_palette()[: len(class_names)]],
        img_suffix=suffix,
        init_checkpoint=settings.init_checkpoint,
        resume=True,
        checkpoint_interval=settings.checkpoint_interval,
        num_workers=0,
        cfg_options={"model.type": "MultiScaleEncoderDecoder"} if settings.msc_training else None,
        **settings.recipe_overrides(),
    )


def run_train(params: Params, layout: ArtifactLayout) -> ModelRecord:
    """Train, copy the last checkpoint and log into the output, write `model.json`."""
    from wsss_mmseg.recipe import effective_recipe
    from wsss_mmseg.training import train_segmenter

    manifest = read_manifest(layout)
    summary = PseudoMaskStore(layout.pseudo).read_summary()
    lineage = {
        "input_manifest_sha256": manifest_sha256(manifest),
        "pseudo_params": summary.params if summary else None,
        "pseudo_flow_run_id": summary.flow_run_id if summary else None,
    }
    work_dir = layout.scratch(f"train-{sha256_of({'train': params.section_dict('train'), **lineage})[:16]}")
    work_dir.mkdir(parents=True, exist_ok=True)
    split = work_dir / "split.txt"
    write_text_atomic(split, "".join(f"{r.image_id}\n" for r in manifest.records if r.tags))
    cfg = train_config(params, layout, manifest, work_dir, split)
    recipe = effective_recipe(cfg)
    checkpoint = train_segmenter(cfg)
    copy_file_atomic(checkpoint, layout.model)
    for log in sorted(work_dir.rglob("*.log"))[-1:]:
        copy_file_atomic(log, layout.train_log)
    shutil.rmtree(work_dir, ignore_errors=True)
    record = ModelRecord(
        checkpoint=str(layout.model),
        trained_iterations=recipe["max_iters"],
        num_images=sum(1 for r in manifest.records if r.tags),
        class_names=["background", *manifest.class_names],
        params=params.section_dict("train"),
        flow_run_id=flow_run_id(),
        recipe=recipe,
        **lineage,
    )
    record.write(layout.model_record)
    return record
