"""MMSegmentation adapter of wsss: the only package that imports mmseg, mmengine or mmcv.

Importing it registers, in mmseg's registries (scope ``mmseg``):

* ``ASPPV2Head`` (MODELS): DeepLabV2's summed dilated classifiers;
* ``ConfidenceGuidedCELoss`` (MODELS): the CLIP-ES confidence-guided CE;
* ``LoadImageAsStored`` (the project's decoding, no EXIF rotation), ``LoadConfidenceMap`` and
  ``PackSegInputsWithConfidence`` (TRANSFORMS);
* ``PseudoMaskDataset`` (DATASETS): images + pseudo masks (+ confidence) for any class list;
* ``PlainCheckpointHook`` (HOOKS): checkpoints written as plain data (see :mod:`wsss_mmseg.checkpoints`);
* ``WsssIoUMetric`` (METRICS): the project's mIoU for validation during training (curves).

It also routes mmengine's loading of local checkpoint files through
:func:`wsss_mmseg.checkpoints.load_plain_checkpoint` (weights-only, torch's default allow-list).

Configs name it in ``custom_imports=dict(imports=['wsss_mmseg'])``. The minimal ``mmcv.ops``
shim (see :mod:`wsss_mmseg.ops_shim`) is installed first, because mmcv-lite lacks compiled
ops that ``import mmseg.models`` insists on importing.
"""

from pathlib import Path

from wsss_mmseg.ops_shim import ensure_mmcv_ops

ensure_mmcv_ops()

# The registering imports must follow the shim.
from wsss_mmseg.checkpoints import PlainCheckpointHook, use_plain_checkpoint_loader  # noqa: E402
from wsss_mmseg.datasets import PseudoMaskDataset  # noqa: E402
from wsss_mmseg.heads import ASPPV2Head  # noqa: E402
from wsss_mmseg.losses import ConfidenceGuidedCELoss, ConfidenceLossMixin  # noqa: E402
from wsss_mmseg.segmentors import MultiScaleEncoderDecoder  # noqa: E402
from wsss_mmseg.transforms import LoadConfidenceMap, LoadImageAsStored, PackSegInputsWithConfidence  # noqa: E402
from wsss_mmseg.validation import WsssIoUMetric  # noqa: E402

use_plain_checkpoint_loader()

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""Shipped mmengine configs: ``deeplabv2_r101_voc_pseudo.py`` and ``deeplabv2_tiny_cpu.py``."""

__all__ = [
    "CONFIG_DIR",
    "ASPPV2Head",
    "ConfidenceGuidedCELoss",
    "ConfidenceLossMixin",
    "LoadConfidenceMap",
    "LoadImageAsStored",
    "MultiScaleEncoderDecoder",
    "PackSegInputsWithConfidence",
    "PlainCheckpointHook",
    "PseudoMaskDataset",
    "WsssIoUMetric",
]
