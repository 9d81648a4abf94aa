"""The one table of `device_check.py`: each figure next to its H100 target and a verdict.

Targets (issue 14 §3, on an H100): >= 200 VOC images/s CAM+CAA in fp16 and >= 10x the reference
loop on the same GPU; cams+refine end to end >= 100 images/s; fp16 refined maps within 2e-2 of
fp32 with >= 99.5 % pseudo-mask agreement. They are judged only in the GPU profile.
"""

from __future__ import annotations

from typing import Any

TARGET_IMAGES_PER_S = 200.0
TARGET_SPEEDUP = 10.0
TARGET_STAGE_IMAGES_PER_S = 100.0
TARGET_MAX_ABS = 2e-2
TARGET_AGREEMENT = 0.995


def verdict(value: float | None, target: float, on_gpu: bool) -> str:
    if value is None:
        return "not measured"
    if not on_gpu:
        return "n/a on CPU"
    return "met" if value >= target else f"MISSED ({value / target:.0%} of target)"


def _failure(name: str, part: dict[str, Any]) -> tuple[str, str, str, str]:
    """The row of a part that failed (last line of its traceback) or was skipped."""
    text = part.get("error") or part.get("skipped") or "not run"
    return (name, text.strip().splitlines()[-1], "", "FAILED" if "error" in part else "SKIPPED")


def default_rows(part: dict[str, Any], on_gpu: bool) -> list[tuple[str, str, str, str]]:
    """Part 0, the first rows: the stage defaults end to end, and their CAM+CAA path vs the reference."""
    if "stages" not in part:
        return [_failure("0 stage defaults", part)]
    stages, cam_caa = part["stages"], part["cam_caa"]
    layout = stages["layout"]
    processes = "stage process" if layout["processes"] <= 1 else f"{layout['processes']} worker processes"
    rows = [
        (
            f"0 cams+refine end to end, stage defaults, {stages['images']} images",
            f"{stages['images_per_s']} img/s",
            f">= {TARGET_STAGE_IMAGES_PER_S:.0f} img/s",
            verdict(stages["images_per_s"], TARGET_STAGE_IMAGES_PER_S, on_gpu),
        ),
        (
            f"0   clip {layout['clip']}, batch {layout['cam.batch_size']}, {processes}, {layout['cores']} cores: "
            + (
                f"{layout['runner.image_processes']} image processes (started in {stages.get('image_processes_start_seconds')} s)"
                if layout.get("runner.image_processes")
                else f"{layout['runner.decode_workers']} decode threads"
            )
            + f", caa.device {layout['caa.device']}, {layout['store.compression']}; cams / refine",
            f"{stages['cams_images_per_s']} / {stages['refine_images_per_s']} img/s",
            "",
            "",
        ),
        (
            f"0 CAM+CAA default path (batch {cam_caa['batch_size']}) / reference one-image loop ({cam_caa['reference']['precision']})",
            f"{cam_caa['images_per_s']} / {cam_caa['reference']['images_per_s']} img/s",
            "",
            "",
        ),
        (
            "0 ratio: default path / reference loop, same device",
            f"{cam_caa['ratio']}x",
            f">= {TARGET_SPEEDUP:.0f}x",
            verdict(cam_caa["ratio"], TARGET_SPEEDUP, on_gpu),
        ),
    ]
    return rows


def table_rows(figures: dict[str, Any], on_gpu: bool) -> list[tuple[str, str, str, str]]:
    """(quantity, value, target, verdict) rows of the one table."""
    rows: list[tuple[str, str, str, str]] = []
    if "0_defaults" in figures:
        rows += default_rows(figures["0_defaults"], on_gpu)
    part = figures.get("1_cam_caa", {})
    if "sets" not in part:
        rows.append(_failure("1 CAM+CAA", part))
    else:
        for name, data in part["sets"].items():
            for batch, row in data["batches"].items():
                ips = row["images_per_s"]
                target = f">= {TARGET_IMAGES_PER_S:.0f} img/s" if name == "voc_500x375" else ""
                memory = f" ({row['peak_cuda_mib']} MiB)" if row["peak_cuda_mib"] is not None else ""
                rows.append(
                    (
                        f"1 CAM+CAA {part['precision']} {name} batch {batch}",
                        f"{ips} img/s{memory}",
                        target,
                        verdict(ips, TARGET_IMAGES_PER_S, on_gpu) if target else "",
                    )
                )
            cam_only = data["cam_only"]
            rows.append((f"1   {name}: CAM only, no CAA, batch {cam_only['batch']}", f"{cam_only['images_per_s']} img/s", "", ""))
            rows.append((f"1   {name}: prepare (resize+normalise), one thread", f"{data['prepare_ms_per_image_one_thread']} ms/img", "", ""))
        reference = part["reference"]
        rows.append((f"1 reference procedure, one image at a time, {reference['precision']}", f"{reference['images_per_s']} img/s", "", ""))
        speedup = part["speedup_best_batch_vs_reference"]
        rows.append(
            ("1 speed-up: best batch / reference (500x375)", f"{speedup}x", f">= {TARGET_SPEEDUP:.0f}x", verdict(speedup, TARGET_SPEEDUP, on_gpu))
        )
    part = figures.get("2_fp16_vs_fp32", {})
    if "refined_max_abs" in part:
        max_abs = part["refined_max_abs"]
        rows.append(
            (
                f"2 fp16 vs fp32, {part['images']} images: max |refined diff|",
                f"{max_abs:.2e}",
                f"<= {TARGET_MAX_ABS:.0e}",
                ("met" if max_abs <= TARGET_MAX_ABS else "MISSED") if on_gpu else "n/a on CPU",
            )
        )
        rows.append(
            (
                "2   images whose box masks differ / max diff elsewhere",
                f"{part['images_with_different_box_masks']} / {part['refined_max_abs_where_boxes_agree']:.2e}",
                "",
                "",
            )
        )
        rows.append(
            (
                "2   pixels over the target / gradcam max diff / last-block logit max",
                (
                    f"{100 * part['refined_pixel_fraction_over_target']:.3f} % / {part['gradcam_max_abs']:.2e} / "
                    f"{part['last_block_attention_logit_max']}"
                ),
                "",
                "",
            )
        )
        rows.append(
            (
                f"2 pseudo-mask pixel agreement ({'CRF' if part['crf'] else 'NO CRF: pydensecrf missing'})",
                f"{100 * part['pseudo_agreement']:.3f} %",
                f">= {100 * TARGET_AGREEMENT:.1f} %",
                verdict(part["pseudo_agreement"], TARGET_AGREEMENT, on_gpu),
            )
        )
    else:
        rows.append(_failure("2 fp16 vs fp32", part))
    part = figures.get("3_stages", {})
    if "images_per_s" in part:
        rows.append(
            (
                f"3 cams+refine end to end, {part['images']} images, batch {part['batch_size']}, {part['compression']}",
                f"{part['images_per_s']} img/s",
                f">= {TARGET_STAGE_IMAGES_PER_S:.0f} img/s",
                verdict(part["images_per_s"], TARGET_STAGE_IMAGES_PER_S, on_gpu),
            )
        )
        rows.append(
            (
                (
                    f"3   batch {part['batch_size']}, the rest as shipped: decode_workers {part['decode_workers']}, "
                    f"caa.device {part['caa_device']}; cams / refine alone"
                ),
                f"{part['cams_images_per_s']} / {part['refine_images_per_s']} img/s",
                "",
                "",
            )
        )
        labels = {
            "without_overlap": lambda v: "without runner.overlap_io",
            "caa_on_device": lambda v: f"decode_workers {v['decode_workers']}, caa.device {v['caa_device']}",
            "cams_uncompressed": lambda v: f"decode_workers {v['decode_workers']}, store.compression none",
            "refine_processes": lambda v: (
                f"decode_workers {v['decode_workers']}, refine on {v['refine_processes']} processes, {v['images_per_shard']} img/shard"
            ),
            "both_processes": lambda v: (
                f"cams on {v['cams_processes']} processes (decode_workers {v['decode_workers']}), "
                f"refine on {v['refine_processes']}, {v['images_per_shard']} img/shard"
            ),
        }
        for key, label in labels.items():
            if key in part:
                v = part[key]
                rows.append(
                    (
                        f"3   {label(v)} (all / cams / refine)",
                        f"{v['images_per_s']} / {v['cams_images_per_s']} / {v['refine_images_per_s']} img/s",
                        f">= {TARGET_STAGE_IMAGES_PER_S:.0f} img/s" if key != "without_overlap" else "",
                        verdict(v["images_per_s"], TARGET_STAGE_IMAGES_PER_S, on_gpu) if key != "without_overlap" else "",
                    )
                )
    else:
        rows.append(_failure("3 cams+refine end to end", part))
    part = figures.get("4_deeplabv2", {})
    if "iterations_per_second" in part:
        rows.append(
            (
                f"4 DeepLabV2-R101 CGL, batch {part['batch']}, crop {part['crop']}, {part['iterations_timed']} timed it",
                f"{part['iterations_per_second']} it/s",
                "",
                "",
            )
        )
        rows.append(("4   peak memory", str(part["memory"]), "", ""))
    else:
        rows.append(_failure("4 DeepLabV2-R101", part))
    return rows


def format_table(figures: dict[str, Any], on_gpu: bool) -> str:
    env = figures["environment"]
    header = (
        f"GPU check ({figures['profile']} profile) on {env['device']}, torch {env['torch']}, CUDA {env['cuda']}, "
        f"Python {env['python']}, {env['cpu_count']} CPUs; weights: {figures['weights']}"
    )
    rows = [("quantity", "value", "target (H100)", "verdict"), *table_rows(figures, on_gpu)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [header, "-" * len(header)]
    for index, row in enumerate(rows):
        lines.append(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("-+-".join("-" * width for width in widths))
    lines.append(f"total {figures['seconds_total']} s; " + ", ".join(f"part {k[0]} {v} s" for k, v in figures["seconds"].items()))
    return "\n".join(lines)
