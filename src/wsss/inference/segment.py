"""`wsss segment`: CLIP-ES on a person's own photos and tags, through the pipeline stages' own steps.

No dataset layout, but no second implementation either. Per shard of images (sorted names, the
stages' `shard_plan` with `store.*`), exactly what `dvc repro` runs for a dataset image:

1. `cams`: `wsss.cam.streaming.stream_cams` (decode with `wsss.imaging.load_rgb`, the extractor's
   input transform, `cam.batch_size` per forward by size bucket), each result stored as the stage
   stores it (`wsss.cam.stored_output.cam_image_output` into a `ShardWriter`: Grad-CAM float32,
   attention float16);
2. `refine`: `wsss.cam.refine_stored.RefineStored` on that shard (CAA from the stored values),
   written to a refined shard (float16, as the stage stores it);
3. `pseudo`: the refined maps read back as stored and `wsss.pseudo.pseudo_label` with the
   `pseudo` section (dense CRF on the decoded image, confidence filter).

So the maps and masks equal the pipeline's for the same image, weights and params (a test runs
both). The stores land in `<out>/cams` and `<out>/refined` with `keep_stores` (`--hdf5`), else in a
temporary folder; masks, raw labels and confidence use the pseudo stage's file layout and encoders
(`wsss.catalog.PseudoLayout`); overlays are `wsss.viz.overlay_figure` with the weights' banner.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from wsss.cam.extractor import ClipEsCamExtractor
from wsss.cam.refine_stored import RefineStored
from wsss.cam.stored_output import cam_image_output
from wsss.cam.streaming import stream_cams
from wsss.catalog import PseudoLayout
from wsss.clip import LoadedClip
from wsss.datasets import file_sha256
from wsss.failures import FailureReport
from wsss.imaging import load_rgb
from wsss.incremental import shard_plan
from wsss.inference.inputs import ImageInput
from wsss.inference.outputs import OutputFolder, record_failure
from wsss.io import CamStore, ShardWriter, shard_path
from wsss.io.overlay_inputs import weights_are_random
from wsss.machine_layout import resolve_auto, resolved
from wsss.params import Params
from wsss.provenance import stage_attributes
from wsss.viz import OverlayInputs, overlay_figure

CAMS, REFINED, OVERLAYS = "cams", "refined", "overlays"


@dataclass(frozen=True)
class SegmentRequest:
    """What to segment: images with their tags (class names of the vocabulary), and what to keep."""

    images: Sequence[ImageInput]
    tags: Mapping[str, tuple[str, ...]]  # image name -> tags
    template: str
    keep_stores: bool = False
    overlays: bool = True


def segment_images(
    request: SegmentRequest,
    params: Params,
    clip: LoadedClip,
    out: OutputFolder,
    failures: FailureReport,
    advance: Callable[[int], None] = lambda _: None,
) -> dict[str, Any]:
    """Run cams -> refine -> pseudo on every image into `out`; failures go to `failures`."""
    params = resolve_auto(params)  # as the stages resolve it (built-in defaults without a params file)
    logger = out.logger()
    vocabulary = params.vocabulary
    extractor = ClipEsCamExtractor(clip, vocabulary, replace(params.cam, templates=(request.template,)), params.caa)
    images = {image.name: image for image in request.images}
    identity = clip.identity()
    sections = params.sections("clip", "classes", "cam", "store")
    cam_attrs = stage_attributes(
        "cams",
        sections,
        "",
        clip=dict(identity),
        template=request.template,
        class_names=list(vocabulary.class_names),
        prompt_names=list(vocabulary.prompt_names),
        background_words=list(vocabulary.background_words),
        dataset_root="",
    )
    refined_attrs = stage_attributes("refine", params.sections("caa", "store"), "", upstream_cams={"clip": dict(identity)})
    written = 0
    with tempfile.TemporaryDirectory(prefix="wsss-segment-") as scratch:
        stores = out.root if request.keep_stores else Path(scratch)
        plan = shard_plan(sorted(images), params.store.images_per_shard, params.store.shard_count)
        for folder in (stores / CAMS, stores / REFINED):  # an earlier run's extra shards would read as this run's
            for stale in set(folder.glob("shard-*.h5")) - {shard_path(folder, index) for index in plan}:
                stale.unlink()
        for index, names in sorted(plan.items()):
            kept = _cams_shard(
                extractor, [images[n] for n in names], request.tags, params, stores / CAMS, index, cam_attrs, failures, logger, advance
            )
            kept = _refined_shard(kept, params, stores, index, refined_attrs, failures, logger, advance)
            cams, refined = CamStore(stores / CAMS), CamStore(stores / REFINED)
            for name in kept:
                try:
                    _pseudo_outputs(images[name], cams, refined, params, out, request, identity)
                    written += 1
                except Exception as error:  # noqa: BLE001 - recorded with its traceback in the log; the rest goes on
                    record_failure(failures, logger, name, str(images[name].path), error)
                advance(1)
    return {"images": len(images), "written": written, "clip": identity, "random_weights": weights_are_random(identity)}


def _cams_shard(
    extractor: ClipEsCamExtractor,
    images: list[ImageInput],
    tags: Mapping[str, tuple[str, ...]],
    params: Params,
    folder: Path,
    index: int,
    attrs: dict[str, Any],
    failures: FailureReport,
    logger: Any,
    advance: Callable[[int], None],
) -> list[str]:
    """The cams stage's loop over one shard's images into `folder`; returns the names stored."""

    def load(image: ImageInput) -> Any:
        try:
            prepared = extractor.prepare(load_rgb(image.path, params.reliability.max_image_pixels))
        except Exception as error:  # noqa: BLE001 - the stage's per-image failures (decode, size) and anything unexpected
            return error
        return prepared, [extractor.vocabulary.class_id(tag) for tag in tags[image.name]]

    stored = []
    batch_size, decode_workers = resolved(params.cam.batch_size, "cam.batch_size"), resolved(params.runner.decode_workers, "runner.decode_workers")
    with ShardWriter(shard_path(folder, index), attrs, compression=params.store.compression) as writer:
        for image, result in stream_cams(extractor, images, load, batch_size, params.runner.overlap_io, decode_workers):
            if isinstance(result, Exception):
                record_failure(failures, logger, image.name, str(image.path), result)
                advance(1)
                continue
            output = cam_image_output(result, tags[image.name], str(image.path), file_sha256(image.path), params.store)
            writer.add(image.name, output.arrays, output.attrs, output.dtypes)
            stored.append(image.name)
    return stored


def _refined_shard(
    names: list[str],
    params: Params,
    stores: Path,
    index: int,
    attrs: dict[str, Any],
    failures: FailureReport,
    logger: Any,
    advance: Callable[[int], None],
) -> list[str]:
    """The refine stage's per-image callback over one CAM shard into the refined shard; returns the names stored."""
    refine = RefineStored(stores / CAMS, params.caa)
    kept = []
    with ShardWriter(shard_path(stores / REFINED, index), attrs, compression=params.store.compression) as writer:
        for name in names:
            try:
                output = refine(name)
            except Exception as error:  # noqa: BLE001 - an image that fails is recorded with its traceback; the rest go on
                record_failure(failures, logger, name, name, error)
                advance(1)
                continue
            writer.add(name, output.arrays, output.attrs, output.dtypes)
            kept.append(name)
    return kept


def _pseudo_outputs(
    image: ImageInput, cams: CamStore, refined: CamStore, params: Params, out: OutputFolder, request: SegmentRequest, identity: Mapping[str, Any]
) -> None:
    """The pseudo stage's step on the stored refined maps: mask, raw labels, confidence (+ overlay: the
    photo, each tag's refined map with its CLIP probability from the CAM store, the mask)."""
    from wsss.pseudo import pseudo_label

    stored = refined.read(image.name, ["refined"], keep_dtype=True)
    maps = stored.arrays["refined"]  # float16, as the pseudo stage reads them
    class_ids = np.asarray(stored.attrs["class_ids"], dtype=np.int64)
    rgb = np.asarray(load_rgb(image.path))
    label = pseudo_label(rgb if params.pseudo.needs_image(class_ids) else None, maps, class_ids, params.pseudo)
    out.write_labels(PseudoLayout.MASKS, image.name, label.labels)
    out.write_labels(PseudoLayout.RAW, image.name, label.raw_labels)
    out.write_confidence(PseudoLayout.CONFIDENCE, image.name, label.confidence)
    if request.overlays:
        probabilities = cams.read(image.name, []).attrs.get("tag_probabilities")
        out.write_image(
            OVERLAYS,
            image.name,
            overlay_figure(
                OverlayInputs(
                    rgb=rgb,
                    maps=maps,
                    tags=list(stored.attrs["tags"]),
                    class_names=params.vocabulary.class_names,
                    probabilities=probabilities,
                    pseudo_labels=label.labels,
                    random_weights=weights_are_random(identity),
                    title=f"{image.name}  |  CLIP weights: {identity.get('weights', '')}",
                )
            ),
        )
