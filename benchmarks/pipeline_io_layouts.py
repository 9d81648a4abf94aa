"""Where the cams and refine stages' host work runs: CPU ms per image in the stage process and on
its image processes (`runner.image_processes`), through the stages' own engine, PRECOMPUTED model.

Part of `python -m benchmarks.pipeline_io_cost` (its last table). The cams stage's shard job is run
as the stage runs it (`run_sharded` -> `write_shard` -> `stream_cams` with `PrepareFile`, the
stage's `cam_image_output`, the background writer or the image processes, publication), with the
model replaced by the precomputed outputs of the same photos; refine is the stage's own
`RefineStored`. Per layout it prints the CPU time of the stage process (every thread: getrusage)
and of the image processes (/proc/<pid>/stat of the pool's workers) per image, and whether the
stores equal the in-process layout's byte for byte. On a GPU host the stage process's share is
what bounds the images per second the GPU gets (one GIL, one HDF5 lock); the processes' share
spreads over the cores.
"""

from __future__ import annotations

import hashlib
import os
import resource
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsss.cam import CaaSettings, CamSettings
from wsss.cam.extractor import CamResult
from wsss.cam.refine_stored import REFINE_OVERLAP_IO, RefineStored
from wsss.cam.stored_output import cam_image_output
from wsss.cam.streaming import PrepareFile, stream_cams
from wsss.incremental import ImageOutput, run_sharded, shard_plan
from wsss.io.pipelining import image_processes
from wsss.io.settings import StoreSettings

PATCH_SIZE = 16


class PrecomputedModel:
    """Stands in for the extractor in `stream_cams` (batch 1: one call per image, in order)."""

    def __init__(self, results: Sequence[CamResult]) -> None:
        self.results, self.calls = results, 0

    def extract_batch(self, items: Sequence[Any], refine: bool = False) -> list[CamResult]:
        found = [self.results[(self.calls + offset) % len(self.results)] for offset in range(len(items))]
        self.calls += len(items)
        return found


@dataclass
class CamsWithoutModel:
    """The cams stage's streaming callback (`wsss.cam.stored_output.CamImages.stream`) on precomputed outputs."""

    root: Path
    paths: dict[str, str]
    results: list[CamResult]
    processes: int
    decode_workers: int = 2

    def stream(self, image_ids: Sequence[str], overlap: bool) -> Iterator[tuple[str, ImageOutput | Exception]]:
        model = PrecomputedModel([self.results[int(i[3:]) % len(self.results)] for i in image_ids])
        items = [(i, self.paths[i], list(model.results[n].class_ids)) for n, i in enumerate(image_ids)]
        pool = image_processes(self.processes) if self.processes else None
        load = PrepareFile(self.root, PATCH_SIZE, CamSettings().max_side)
        for (image_id, path, _), result in stream_cams(model, items, load, 1, overlap, self.processes or self.decode_workers, pool):  # type: ignore[arg-type]
            if isinstance(result, Exception):
                yield image_id, result
                continue
            tags = ["person", "dog"][: len(result.class_ids)]
            yield image_id, cam_image_output(result, tags, path, "0" * 64, StoreSettings())

    def __call__(self, image_id: str) -> ImageOutput:
        output = next(self.stream([image_id], overlap=False))[1]
        if isinstance(output, Exception):
            raise output
        return output


def cam_results(outputs: list[dict[str, Any]]) -> list[CamResult]:
    return [
        CamResult(
            np.asarray(o["attrs"]["class_ids"]),
            tuple(o["attrs"]["original_size"]),
            tuple(o["attrs"]["grid"]),
            o["gradcam"],
            o["attention"],
            np.asarray(o["attrs"]["tag_probabilities"]),
        )
        for o in outputs
    ]


def pool_pids() -> list[int]:
    """This process's children (the image processes; spawn also starts a resource tracker, idle)."""
    mine, children = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == mine:
                children.append(int(entry.name))
    return children


def cpu_seconds(pids: Sequence[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def digest(store: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(store.glob("shard-*.h5")))).hexdigest()


def run_layout(paths: list[Path], outputs: list[dict[str, Any]], processes: int, count: int, work: Path) -> dict[str, Any]:
    """One cams + refine pass over `count` images with `processes` image processes (0: in this process)."""
    ids = [f"img{index:04d}" for index in range(count)]
    root = paths[0].parent
    compute = CamsWithoutModel(root, {i: paths[int(i[3:]) % len(paths)].name for i in ids}, cam_results(outputs), processes)
    keys = {i: hashlib.sha256(i.encode()).hexdigest() for i in ids}
    figures: dict[str, Any] = {}
    for stage in ("cams", "refine"):
        store = work / f"{stage}-{processes}"
        pids = pool_pids()
        stage_cpu, pool_cpu, started = own_cpu_seconds(), cpu_seconds(pids), time.perf_counter()
        if stage == "cams":
            run_sharded(
                shard_plan(ids, count),
                keys,
                store,
                work / f"scratch-{stage}-{processes}",
                {"stage": stage},
                compute,
                compression="zstd",
                copied_arrays=("gradcam", "attention"),
                overlap=True,
                processes=processes,
            )
        else:
            run_sharded(
                {0: ids},
                keys,
                store,
                work / f"scratch-{stage}-{processes}",
                {"stage": stage},
                RefineStored(work / f"cams-{processes}", CaaSettings()),
                compression="zstd",
                copied_arrays=("refined",),
                overlap=REFINE_OVERLAP_IO,
                processes=processes,
            )
        wall = time.perf_counter() - started
        figures[stage] = {
            "stage_process_ms": (own_cpu_seconds() - stage_cpu) * 1e3 / count,
            "image_processes_ms": (cpu_seconds(pids) - pool_cpu) * 1e3 / count,
            "images_per_s_wall": count / wall,
            "digest": digest(store),
        }
    return figures


def measure_layouts(paths: list[Path], outputs: list[dict[str, Any]], rounds: int, work: Path, processes: int = 2, count: int = 48) -> dict[str, Any]:
    """Medians over `rounds` of each layout, the layouts interleaved in every round."""
    image_processes(processes).map(abs, range(4 * processes))  # spawn and import before the clock
    list(image_processes(processes).map(_import_stage_modules, range(4 * processes)))
    samples: dict[str, list[dict[str, Any]]] = {}
    for round_index in range(rounds + 1):  # round 0 warms caches and is dropped
        for layout in (0, processes):
            result = run_layout(paths, outputs, layout, count, work / f"round{round_index}")
            if round_index:
                samples.setdefault(f"{layout} image processes", []).append(result)
    figures: dict[str, Any] = {}
    for layout, runs in samples.items():
        figures[layout] = {
            stage: {
                key: round(statistics.median(run[stage][key] for run in runs), 2)
                for key in ("stage_process_ms", "image_processes_ms", "images_per_s_wall")
            }
            for stage in ("cams", "refine")
        }
        for stage in ("cams", "refine"):
            figures[layout][stage]["same_bytes_as_in_process"] = all(
                run[stage]["digest"] == here[stage]["digest"] for run, here in zip(runs, samples["0 image processes"], strict=True)
            )
    return figures


def _import_stage_modules(_: int) -> None:
    import wsss.cam.refine_stored
    import wsss.cam.streaming
    import wsss.incremental.engine  # noqa: F401


def report_layouts(figures: dict[str, Any]) -> None:
    print("\n-- where the stages' host work runs (engine, precomputed model; CPU ms per image, medians) --")
    print("  layout                 stage    stage process  image processes    total  images/s wall  same bytes")
    for layout, stages in figures.items():
        for stage, values in stages.items():
            total = values["stage_process_ms"] + values["image_processes_ms"]
            print(
                f"  {layout:22s} {stage:7s} {values['stage_process_ms']:14.2f} {values['image_processes_ms']:16.2f}"
                f" {total:8.2f} {values['images_per_s_wall']:14.1f}  {values['same_bytes_as_in_process']}"
            )
