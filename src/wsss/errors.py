"""Exceptions raised by the core. Each names the offending file or value and the reason."""

from __future__ import annotations


class WsssError(Exception):
    """Base class of every error this package raises on purpose."""


class CheckpointError(WsssError):
    """CLIP weights could not be found, verified or loaded."""


class ImageError(WsssError):
    """An image could not be decoded or has an unusable size or mode."""


class ConfigError(WsssError):
    """A configuration value has the wrong type, range or name."""


class DatasetError(WsssError):
    """A dataset tree, split file, annotation or manifest is missing, malformed or unsafe."""


class StoreError(WsssError):
    """A CAM store shard could not be written, opened, read or verified."""


class TooManyFailuresError(WsssError):
    """More images failed in a stage than `reliability.max_failed_share` allows."""


class RunLockedError(WsssError):
    """Another live pipeline run holds the artifacts directory."""


class ArtifactWriteError(WsssError):
    """An output file could not be written (disk full, permissions); what was published stays."""


class LoopError(WsssError):
    """A loop command (`wsss run`, `relabel`, `serve`) cannot start or its pipeline run failed."""
