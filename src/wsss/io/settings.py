"""The `store` params section: HDF5 shard layout of the CAM and refined-map stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from wsss.settings import check_fields, setting

# Lossless codecs a store may be written with (`ShardWriter` compression names; the HDF5 filters
# of each are in `wsss.io.codecs`). zstd: HDF5 shuffle + Zstandard 1 (read with h5py + `import hdf5plugin`).
STORE_COMPRESSIONS: tuple[str, ...] = ("zstd", "blosc2-zstd", "gzip", "lzf", "none")
DEFAULT_COMPRESSION = "zstd"
MAP_DTYPES: tuple[str, ...] = ("float16", "float32")


@dataclass(frozen=True)
class StoreSettings:
    """Shard sizes or stable shard count, codec and storage dtypes.

    Grad-CAM maps stay float32 by default: CAA's box mask thresholds `uint8(cam * 255)`, and
    float16 rounding moves box edges (refined maps then differ from the reference by up to ~0.17);
    they are tiny (K x h x w). The attention affinity is the bulk of the store; float16 changes the
    refined maps by < 3e-4.
    """

    SECTION: ClassVar[str] = "store"

    images_per_shard: int = setting(500, "images per shard file (by sorted id) when shard_count is null", ge=1, le=1_000_000, identity=False)
    shard_count: int | None = setting(
        None, "stable shards instead: sha256(id) % shard_count, so an added image rewrites only its shard", ge=1, le=1_000_000, identity=False
    )
    compression: str = setting(
        DEFAULT_COMPRESSION,
        "lossless shard codec: zstd (shuffle + Zstandard), blosc2-zstd, gzip, lzf or none",
        choices=STORE_COMPRESSIONS,
        identity=False,
    )
    gradcam_dtype: str = setting("float32", "storage dtype of the Grad-CAM maps", choices=MAP_DTYPES)
    attention_dtype: str = setting("float16", "storage dtype of the attention affinity", choices=MAP_DTYPES)

    def __post_init__(self) -> None:
        check_fields(self)
