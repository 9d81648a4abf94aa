"""The effective training recipe of a built config: what `model.json` and `wsss lineage` record.

The config file is the source of the recipe; `train.*` params override single values
(`build_train_config`). These are the values the runner will actually use.
"""

from __future__ import annotations

from typing import Any

from mmengine.config import Config


def effective_recipe(cfg: Config) -> dict[str, Any]:
    """Schedule, batch, crop, learning rate and seed of a config (after overrides)."""
    crop = next((step["crop_size"] for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "RandomCrop"), None)
    randomness = cfg.get("randomness") or {}
    return {
        "max_iters": int(cfg.train_cfg.max_iters),
        "batch_size": int(cfg.train_dataloader.batch_size),
        "crop_size": [int(v) for v in crop] if crop is not None else None,
        "lr": float(cfg.optim_wrapper.optimizer.lr),
        "seed": randomness.get("seed"),
        "checkpoint_interval": int(cfg.default_hooks.checkpoint.interval),
    }


def model_description(cfg: Config) -> dict[str, Any]:
    """What the trained network is (the model card's and the export's facts): segmentor, backbone,
    decode head, normalisation and the pixel order the preprocessor expects."""
    model, backbone, head = cfg.model, cfg.model.backbone, cfg.model.decode_head
    preprocessor = model.data_preprocessor
    return {
        "segmentor": str(model.type),
        "backbone": {
            "type": str(backbone.type),
            "depth": backbone.get("depth"),
            "strides": list(backbone.get("strides") or []),
            "dilations": list(backbone.get("dilations") or []),
            "norm": str((backbone.get("norm_cfg") or {}).get("type")),
        },
        "decode_head": {
            "type": str(head.type),
            "in_channels": head.get("in_channels"),
            "dilations": list(head.get("dilations") or []),
            "num_classes": int(head.num_classes),
            "loss": str((head.get("loss_decode") or {}).get("type")),
        },
        "mean": [float(v) for v in preprocessor.mean],
        "std": [float(v) for v in preprocessor.std],
        "bgr_to_rgb": bool(preprocessor.get("bgr_to_rgb", False)),
    }
