"""`wsss export-model --format onnx`: the trained segmenter as one self-describing ONNX file.

The graph is the network `evaluate` runs at scale 1 without CRF (`wsss_mmseg.inference`):

* input `image`: float32 `(N, 3, H, W)`, RGB, values 0-255, any N, H and W (dynamic axes);
  the config's normalisation (mean/std, channel order) is applied inside the graph, so a
  consumer only decodes the image;
* output `logits`: float32 `(N, C, H, W)` at the input size: the stride-8 logits of the
  DeepLabV2 head resized bilinearly inside the graph (as `predict_logits_batch` does), so
  `argmax` over C is the label map (label i = class i of the metadata, 0 background).

Test-time scale fusion and the dense CRF stay outside (the CRF is not an ONNX operator); a
consumer who wants them runs `wsss predict`. `metadata_props` carry everything else a consumer
needs: class list, palette, mean/std (and that they are applied inside), the input and output
contract, the recipe and the checkpoint's SHA-256. Exported with torch's TorchScript-based ONNX
exporter (`dynamo=False`: the dynamo exporter needs onnxscript, which is not installed).

`check_export` runs the file with onnxruntime next to PyTorch on real photos and reports the
largest absolute logit difference and the share of pixels whose label agrees.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from wsss.errors import WsssError
from wsss.inference.trained_model import TrainedModel
from wsss.io.atomic import copy_file_atomic
from wsss.viz import class_palette
from wsss_mmseg.inference import load_segmenter, predict_logits

if TYPE_CHECKING:
    from mmseg.models.segmentors import EncoderDecoder  # untyped (Any): the segmentor a config builds

OPSET = 17
INPUT, OUTPUT = "image", "logits"
METADATA_PREFIX = "wsss."
# What the export must reproduce on real photos (fp32, CPU). Measured on the sample's four photos
# with the tiny recipe: at most 2.1e-5 on logits up to 10.6 (2e-6 relative), every label equal. The
# bound leaves ~50x for deeper backbones (ResNet-101 sums more terms) and other CPUs' kernels, and
# is still ~1e-4 of a logit range, far below any difference that changes what the model says.
LOGIT_TOLERANCE = 1e-3
MIN_LABEL_AGREEMENT = 0.999  # an exact tie between two classes may resolve either way


class LogitsAtInputSize(torch.nn.Module):
    """RGB 0-255 `(N, 3, H, W)` -> logits `(N, C, H, W)`: the model's preprocessing arithmetic,
    backbone, decode head and the bilinear resize to the input size."""

    mean: torch.Tensor  # buffers, registered when the preprocessor normalises
    std: torch.Tensor

    def __init__(self, model: EncoderDecoder) -> None:
        super().__init__()
        self.model = model
        preprocessor = model.data_preprocessor
        # The preprocessor takes mmcv's BGR and flips it when `bgr_to_rgb`; our input is RGB, so
        # the model wants it as it is then, or flipped to BGR otherwise.
        self.to_bgr = not preprocessor.channel_conversion
        self.normalise = getattr(preprocessor, "mean", None) is not None  # mmseg registers mean/std only when it normalises
        if self.normalise:
            self.register_buffer("mean", preprocessor.mean.detach().clone().view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", preprocessor.std.detach().clone().view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pixels = image.flip(1) if self.to_bgr else image
        if self.normalise:
            pixels = (pixels - self.mean) / self.std
        logits = self.model.decode_head.forward(self.model.extract_feat(pixels))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


def export_metadata(model: TrainedModel, wrapper: LogitsAtInputSize) -> dict[str, str]:
    """The `metadata_props` of the file: keys prefixed `wsss.`, every value JSON (strings included)."""
    names = list(model.class_names)
    channel_order = "BGR" if wrapper.to_bgr else "RGB"
    values: dict[str, Any] = {
        "classes": names,
        "palette": [list(map(int, colour)) for colour in class_palette(len(names))],
        "ignore_index": 255,
        "input": f"{INPUT}: float32 (N, 3, H, W), RGB, 0-255, any N/H/W; mean/std are applied inside the graph",
        "output": f"{OUTPUT}: float32 (N, C, H, W) at the input size (bilinear inside the graph); labels = argmax over C",
        "mean": [float(v) for v in wrapper.mean.flatten()] if wrapper.normalise else None,
        "std": [float(v) for v in wrapper.std.flatten()] if wrapper.normalise else None,
        "normalisation": f"(pixel - mean) / std in {channel_order} order, inside the graph",
        "test_protocol": "scale 1, no dense CRF (wsss predict adds evaluate's test scales and CRF)",
        "recipe": {"config": model.record.params.get("config"), **model.record.recipe},
        "trained_iterations": model.record.trained_iterations,
        "num_training_images": model.record.num_images,
        "input_manifest_sha256": model.record.input_manifest_sha256,
        **model.identity(),
    }
    return {METADATA_PREFIX + key: json.dumps(value) for key, value in values.items()}  # every value JSON, strings too


def export_onnx(model: TrainedModel, destination: Path, example_size: Sequence[int] = (64, 64)) -> Path:
    """Write the model as ONNX with dynamic batch/height/width and the metadata; return the path.

    Raises:
        WsssError: when onnx is not installed (the `export` extra).
    """
    try:
        import onnx
    except ImportError as error:
        raise WsssError(f"ONNX export needs the onnx package (pip install -e .[export]): {error}") from None
    network = load_segmenter(model.config, model.checkpoint, num_classes=len(model.class_names), device="cpu")
    wrapper = LogitsAtInputSize(network).eval()
    example = torch.zeros(1, 3, *example_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                (example,),
                str(raw),
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: axes, OUTPUT: axes},
                do_constant_folding=True,
            )
        proto = onnx.load(str(raw))
        for key, value in export_metadata(model, wrapper).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.doc_string = f"wsss DeepLabV2 segmenter ({len(model.class_names)} classes); see metadata_props wsss.*"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(raw))
        copy_file_atomic(raw, destination)
    return destination


def read_metadata(path: Path) -> dict[str, Any]:
    """The `wsss.` metadata of an exported file, JSON values decoded (what a consumer reads)."""
    import onnx

    entries = onnx.load(str(path), load_external_data=False).metadata_props
    return {e.key[len(METADATA_PREFIX) :]: json.loads(e.value) for e in entries if e.key.startswith(METADATA_PREFIX)}


@dataclass(frozen=True)
class ExportCheck:
    """onnxruntime vs PyTorch on a set of photos (fp32, CPU)."""

    max_abs_logit_diff: float
    label_agreement: float  # share of pixels with the same arg-max label
    images: list[dict[str, Any]]

    def within(self, tolerance: float = LOGIT_TOLERANCE, min_agreement: float = MIN_LABEL_AGREEMENT) -> bool:
        return self.max_abs_logit_diff <= tolerance and self.label_agreement >= min_agreement


def check_export(path: Path, model: TrainedModel, photos: Sequence[tuple[str, np.ndarray]]) -> ExportCheck:
    """Run the file with onnxruntime and the checkpoint with PyTorch (`predict_logits`, evaluate's
    path at scale 1) on each `(name, (H, W, 3) uint8 RGB)` photo at its own size."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    network = load_segmenter(model.config, model.checkpoint, num_classes=len(model.class_names), device="cpu")
    rows, worst, agree, pixels = [], 0.0, 0, 0
    for name, rgb in photos:
        reference = predict_logits(network, rgb).numpy()
        (exported,) = session.run([OUTPUT], {INPUT: rgb.transpose(2, 0, 1)[None].astype(np.float32)})
        difference = float(np.abs(exported[0] - reference).max())
        same = int((exported[0].argmax(0) == reference.argmax(0)).sum())
        rows.append(
            {
                "image": name,
                "size": list(rgb.shape[:2]),
                "max_abs_logit_diff": difference,
                "max_abs_logit": float(np.abs(reference).max()),
                "label_agreement": same / reference[0].size,
            }
        )
        worst, agree, pixels = max(worst, difference), agree + same, pixels + reference[0].size
    return ExportCheck(worst, agree / pixels if pixels else 1.0, rows)
