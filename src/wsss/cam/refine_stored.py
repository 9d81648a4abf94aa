"""CAA refinement of one image read back from a CAM store: what the `refine` stage computes per image.

The stage entry (`tasks/refine.py`) hands `RefineStored` to the sharded engine; the GPU check's
stage mirror calls the same object, so the stage's per-image work is written once. With
`CaaSettings.device` a CUDA device, the stored float16 attention goes to the GPU as stored (half
the bytes of float32; widening is exact on any device) and only the refined maps come back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from wsss.cam.caa import refine_image
from wsss.cam.settings import CaaSettings
from wsss.devices import torch_device
from wsss.incremental import ImageOutput
from wsss.io import CamStore

# Refine writes its shards inline, not on a background writer thread (`runner.overlap_io` is for
# `cams`): its reads and its writes both need HDF5's one global lock (h5py's), so a writer thread
# only adds contention. Measured on the GPU check's 16-core hosts, refine alone without the thread
# vs with it: 64.2 vs 49.6, 100.5 vs 88.7, 74.4 vs 57.6 images/s (3 runs, benchmarks/RESULTS.md).
REFINE_OVERLAP_IO = False
# Per-image attributes of a CAM store that the refined store repeats.
REFINED_ATTRS = ("class_ids", "tags", "original_size", "source_path", "source_sha256")


def caa_device(settings: CaaSettings) -> torch.device:
    """The device CAA runs on; a device that torch cannot see is an error naming the key."""
    return torch_device(settings.device, "caa.device")


@dataclass(frozen=True)
class RefineStored:
    """Per-image callback (picklable: Dask workers open the store themselves): CAA of one stored image.

    Returns the `refined` maps `(K, H, W)` at the image's original size and the attributes the
    refined store keeps per image.
    """

    cam_dir: Path
    settings: CaaSettings
    # The store and the device, resolved once per process (not per image).
    _opened: list[tuple[CamStore, torch.device]] = field(default_factory=list, compare=False, repr=False)

    def __call__(self, image_id: str) -> ImageOutput:
        if not self._opened:
            self._opened.append((CamStore(self.cam_dir), caa_device(self.settings)))
        store, device = self._opened[0]
        on_host = device.type == "cpu"
        stored = store.read(image_id, ["gradcam", "attention"], keep_dtype=not on_host)
        height, width = (int(v) for v in stored.attrs["original_size"])
        gradcam, attention = (torch.from_numpy(stored.arrays[name]).to(device).float() for name in ("gradcam", "attention"))
        refined = refine_image(gradcam, attention, (height, width), self.settings)
        attrs = {k: stored.attrs[k] for k in REFINED_ATTRS}
        return ImageOutput({"refined": refined.cpu().numpy()}, attrs)  # stored as float16, as the reference saves its maps
