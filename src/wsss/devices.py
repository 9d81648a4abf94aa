"""The torch device a params key names, checked against what torch sees on this machine.

One rule for every device key (`clip.device`, `caa.device`): the value's form is checked when
params are read (`cpu`, `cuda`, `cuda:N`, `mps`); whether this machine has that device is
checked here, when a stage is about to use it, before anything is loaded onto it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.errors import ConfigError

if TYPE_CHECKING:
    import torch


def torch_device(value: str, key: str) -> torch.device:
    """`value` as a torch device that exists here (torch is imported here, when a stage is about to
    use a device: stages that never compute start without it).

    Raises:
        ConfigError: naming `key` (one line) when torch sees no such device.
    """
    import torch

    try:
        device = torch.device(value)
    except RuntimeError as error:
        raise ConfigError(f"{key} is {value!r}, not a torch device ({error})") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{key} is {value!r} but torch sees no CUDA device here (set {key}: cpu)")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"{key} is {value!r} but torch sees {count} CUDA device(s) here, cuda:0 to cuda:{count - 1} (set {key}: cuda:0, or cpu)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key} is {value!r} but torch sees no MPS device here (set {key}: cpu)")
    return device
