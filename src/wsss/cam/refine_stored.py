"""CAA refinement of one image read back from a CAM store: what the `refine` stage computes per image.

The stage entry (`tasks/refine.py`) hands `RefineStored` to the sharded engine; the GPU check's
stage mirror calls the same object, so the stage's per-image work is written once. With
`CaaSettings.device` a CUDA device, the stored float16 attention goes to the GPU as stored (half
the bytes of float32; widening is exact on any device) and only the refined maps come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from wsss.cam.caa import refine_image
from wsss.cam.settings import CaaSettings
from wsss.devices import torch_device
from wsss.errors import StoreError
from wsss.incremental import ImageOutput
from wsss.io import CamStore
from wsss.io.cam_store import ShardReader

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
    """Per-image callback (picklable: Dask workers and image processes open the store themselves):
    CAA of one stored image.

    Returns the `refined` maps `(K, H, W)` at the image's original size and the attributes the
    refined store keeps per image. Narrowed to a shard job's images (`for_images`), it reads
    them from their CAM shard opened once (`close` releases it).
    """

    cam_dir: Path
    settings: CaaSettings
    shard: Path | None = None  # the CAM shard holding every image asked for (`for_images`)
    # The store or shard reader and the device, opened once per process (not per image); never pickled.
    _opened: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def for_images(self, image_ids: Sequence[str]) -> RefineStored:
        """The callback for these images, reading them from the one CAM shard that holds them."""
        store = self._store()
        shards = {store.shard_of(image_id) for image_id in image_ids}
        if len(shards) != 1:
            raise StoreError(f"{self.cam_dir}: a refine shard's images come from one CAM shard, these from {sorted(map(str, shards))}")
        return replace(self, shard=shards.pop(), _opened={"store": store})

    def __call__(self, image_id: str) -> ImageOutput:
        if "device" not in self._opened:
            self._opened["device"] = caa_device(self.settings)
        device = self._opened["device"]
        on_host = device.type == "cpu"
        stored = self._reader().read(image_id, ["gradcam", "attention"], keep_dtype=not on_host)
        height, width = (int(v) for v in stored.attrs["original_size"])
        gradcam, attention = (torch.from_numpy(stored.arrays[name]).to(device).float() for name in ("gradcam", "attention"))
        refined = refine_image(gradcam, attention, (height, width), self.settings)
        attrs = {k: stored.attrs[k] for k in REFINED_ATTRS}
        return ImageOutput({"refined": refined.cpu().numpy()}, attrs)  # stored as float16, as the reference saves its maps

    def close(self) -> None:
        """Close the shard this callback kept open (it reopens on the next call)."""
        reader = self._opened.pop("reader", None)
        if reader is not None:
            reader.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_opened": {}}  # open files and devices stay in their process

    def _store(self) -> CamStore:
        if "store" not in self._opened:
            self._opened["store"] = CamStore(self.cam_dir)
        return self._opened["store"]

    def _reader(self) -> CamStore | ShardReader:
        if self.shard is None:
            return self._store()
        if "reader" not in self._opened:
            self._opened["reader"] = ShardReader(self.shard)
        return self._opened["reader"]
