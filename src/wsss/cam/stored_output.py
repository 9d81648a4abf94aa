"""What the `cams` stage stores per image: a `CamResult` as the CAM store's arrays, dtypes and attributes.

The stage entry and `wsss segment` both hand this to a `ShardWriter`, so a photo segmented
outside the pipeline is stored (and so refined) from exactly the values the pipeline stores:
Grad-CAM at `store.gradcam_dtype` (float32: box masks threshold `uint8(cam * 255)`, which float16
rounding would move), attention at `store.attention_dtype` (float16, as the reference keeps it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from wsss.cam.extractor import CamResult, ClipEsCamExtractor
from wsss.cam.streaming import PrepareFile, stream_cams
from wsss.incremental import ImageOutput
from wsss.io.pipelining import image_processes
from wsss.io.settings import StoreSettings
from wsss.machine_layout import resolved
from wsss.scaleout import RunnerSettings
from wsss.settings import Auto


def cam_image_output(result: CamResult, tags: Sequence[str], source_path: str, source_sha256: str, store: StoreSettings) -> ImageOutput:
    """One image's CAM-store entry: `gradcam` `(K, h, w)`, `attention` `(h*w, h*w)` and the per-image
    attributes `refine` and `pseudo` read back (class ids, tags, sizes, probabilities, source)."""
    return ImageOutput(
        {"gradcam": result.gradcam, "attention": result.attention},
        {
            "class_ids": result.class_ids,
            "tags": list(tags),
            "original_size": list(result.original_size),
            "grid": list(result.grid),
            "tag_probabilities": result.tag_probabilities,
            "source_path": source_path,
            "source_sha256": source_sha256,
        },
        {"gradcam": store.gradcam_dtype, "attention": store.attention_dtype},
    )


@dataclass(frozen=True)
class CamSource:
    """One image the cams stage extracts: its id, its file under the dataset root, its tags and the
    file's SHA-256 (recorded as the entry's source)."""

    image_id: str
    path: str
    tags: tuple[str, ...]
    sha256: str


def stream_image_outputs(
    extractor: ClipEsCamExtractor,
    images: Sequence[CamSource],
    dataset_root: Path,
    batch_size: int | Auto,
    runner: RunnerSettings,
    store: StoreSettings,
    overlap: bool,
) -> Iterator[tuple[str, ImageOutput | Exception]]:
    """Every image's CAM-store entry in order (the engine's streaming callback): `batch_size`
    images per forward (by size bucket), the next images decoded while the model runs when
    `overlap`, on `runner.decode_workers` threads or the `runner.image_processes`; an unreadable
    image yields its error. Layout values must be resolved (`wsss.machine_layout.resolve_auto`)."""
    processes = resolved(runner.image_processes, "runner.image_processes")
    workers = processes or resolved(runner.decode_workers, "runner.decode_workers")
    pool = image_processes(processes) if processes else None
    items = [(image.image_id, image.path, [extractor.vocabulary.class_id(tag) for tag in image.tags]) for image in images]
    by_id = {image.image_id: image for image in images}
    load = PrepareFile.of(extractor, dataset_root)
    for (image_id, _, _), result in stream_cams(extractor, items, load, resolved(batch_size, "cam.batch_size"), overlap, workers, pool):
        if isinstance(result, Exception):
            yield image_id, result
            continue
        image = by_id[image_id]
        yield image_id, cam_image_output(result, image.tags, image.path, image.sha256, store)


@dataclass(frozen=True)
class CamImages:
    """The cams stage's per-image callback for the engine (`wsss.incremental.run_sharded`): what
    the stage and the GPU check's mirror of it both hand to the engine. Picklable when `extractor`
    is (a module-level function, or a `functools.partial` of one), so a shard job can ship it to a
    worker process, which builds or reuses its own extractor there."""

    extractor: Callable[[], ClipEsCamExtractor]  # this process's extractor (built once per process)
    dataset_root: Path
    sources: Mapping[str, CamSource]
    batch_size: int | Auto
    runner: RunnerSettings
    store: StoreSettings

    def for_images(self, image_ids: Sequence[str]) -> CamImages:
        """The same callback with only these images (what one shard job ships)."""
        return replace(self, sources={i: self.sources[i] for i in image_ids})

    def __call__(self, image_id: str) -> ImageOutput:
        output = next(self.stream([image_id], overlap=False))[1]
        if isinstance(output, Exception):
            raise output
        return output

    def stream(self, image_ids: Sequence[str], overlap: bool) -> Iterator[tuple[str, ImageOutput | Exception]]:
        """Every image's output in order (`stream_image_outputs`)."""
        images = [self.sources[i] for i in image_ids]
        yield from stream_image_outputs(self.extractor(), images, self.dataset_root, self.batch_size, self.runner, self.store, overlap)
