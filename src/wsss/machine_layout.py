"""The layout a run takes on this machine: every `auto` of the params resolved in one place.

Keys that may say `auto` (`cam.batch_size`, `caa.device`, `runner.decode_workers`,
`runner.image_processes`, `pseudo.jobs`) are decided here from the machine (its usable cores) and
the params (is CLIP on a CUDA device?), once, at the start of the stage that uses them; nothing
else reads an `auto`. What a stage stores records the result: keys that change a stored value
(`cam.batch_size`, `caa.device`) are recorded resolved in the stage's `params` and so enter its
reuse keys; the layout knobs (`identity=False`) are recorded as the CAM and refined stores' root
attribute `layout` (`layout_record`) and in the pseudo summary's params, never in a key.

The rules (figures behind them: benchmarks/RESULTS.md):

* CLIP on the CPU (this project's 2-core machine, the tests): the layout as it always was:
  batch 1, 2 decode threads, no image processes, CAA on the CPU. The model is the bound there;
  more processes would only compete with torch for the cores.
* CLIP on CUDA: the host's CPU work is the bound (decode + resize ~5 ms, compression ~6 ms per
  image, HDF5's one lock per process), so batches of `GPU_BATCH_SIZE` by size bucket and
  `image_processes` = the cores less `STAGE_CORES` (at most `MAX_IMAGE_PROCESSES`) that decode,
  prepare and compress each shard's images (cams) or read, refine and compress them (refine)
  while the stage process runs the model and assembles the shard (not with `runner.kind: dask`,
  whose worker processes already share the cores). CAA then runs on those
  processes' CPUs (refine on 8 CPU processes: 328-369 images/s; CAA on the GPU in one process:
  ~90); with fewer than `MIN_CORES_FOR_PROCESSES` cores it runs on the CLIP device instead.
* `pseudo.jobs`: every usable core (the dense CRF is single-threaded per image).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from wsss.errors import ConfigError
from wsss.settings import AUTO, Auto

if TYPE_CHECKING:
    from wsss.params import Params

GPU_BATCH_SIZE = 32  # CAM+CAA fp16 on an H100/H200: 195-294 images/s from batch 16 to 64 (RESULTS.md)
CPU_DECODE_WORKERS = 2
MAX_GPU_DECODE_WORKERS = 6  # 6 decode threads fed an H100 at 89 images/s where 2 gave 77
STAGE_CORES = 2  # kept for the stage process (model loop, shard assembly) and the system
MAX_IMAGE_PROCESSES = 8  # refine on 8 processes reached 328-369 images/s, past what one GPU's cams make
MIN_CORES_FOR_PROCESSES = 4


@dataclass(frozen=True)
class Machine:
    """What the layout depends on: the cores this process may use."""

    cores: int

    @classmethod
    def here(cls) -> Machine:
        """This machine: the CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
        affinity = getattr(os, "sched_getaffinity", None)
        return cls(max(1, len(affinity(0)) if affinity else os.cpu_count() or 1))


def clip_on_cuda(params: Params) -> bool:
    return params.clip.device.startswith("cuda")


def resolve_auto(params: Params, machine: Machine | None = None) -> Params:
    """`params` with every `auto` replaced by its value on `machine` (default: this one); explicit values are kept."""
    machine = machine or Machine.here()
    gpu = clip_on_cuda(params)
    runner = params.runner
    decode = runner.decode_workers
    if decode == AUTO:
        decode = min(MAX_GPU_DECODE_WORKERS, max(CPU_DECODE_WORKERS, machine.cores // 2)) if gpu else CPU_DECODE_WORKERS
    processes = runner.image_processes
    if processes == AUTO:  # on Dask the workers are the processes (each would start its own otherwise)
        many = gpu and machine.cores >= MIN_CORES_FOR_PROCESSES and runner.kind == "sequential"
        processes = min(MAX_IMAGE_PROCESSES, machine.cores - STAGE_CORES) if many else 0
    caa_device = params.caa.device
    if caa_device == AUTO:
        caa_device = params.clip.device if gpu and processes == 0 else "cpu"
    batch_size = cam_batch_size(params.cam.batch_size, gpu)
    jobs = params.pseudo.jobs if params.pseudo.jobs != AUTO else machine.cores
    return params.replace(
        cam=replace(params.cam, batch_size=batch_size),
        caa=replace(params.caa, device=caa_device),
        runner=replace(runner, decode_workers=decode, image_processes=processes),
        pseudo=replace(params.pseudo, jobs=jobs),
    )


def cam_batch_size(batch_size: int | Auto, gpu: bool) -> int:
    """`cam.batch_size` resolved: `auto` is `GPU_BATCH_SIZE` with CLIP on CUDA, else 1; a number is kept.
    (Also what an extractor built from unresolved settings runs with: `wsss.cam.ClipEsCamExtractor`.)"""
    if isinstance(batch_size, str):
        return GPU_BATCH_SIZE if gpu else 1
    return batch_size


def resolved(value: int | Auto, key: str) -> int:
    """`value` of `key` after `resolve_auto` decided it, as the number it is.

    Raises:
        ConfigError: naming `key` when it still says `auto` (a caller skipped `resolve_auto`).
    """
    if isinstance(value, str):
        raise ConfigError(f"{key} is still {value!r} here: wsss.machine_layout.resolve_auto decides it before it is used")
    return value


def layout_record(params: Params, machine: Machine | None = None) -> dict[str, Any]:
    """The root attribute `layout` of the CAM and refined stores: how the run that wrote a shard
    went (its resolved `runner` section and the cores it saw); not part of any reuse key."""
    machine = machine or Machine.here()
    return {"cores": machine.cores, "runner": resolve_auto(params, machine).section_dict("runner")}
