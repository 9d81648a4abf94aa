#!/usr/bin/env bash
# Fetch, on a machine with a package registry, the wheels `benchmarks/device_check.sh` installs on a
# GPU machine that has no registry and only torch, torchvision, numpy, h5py, opencv, Pillow, scipy,
# timm, scikit-image, matplotlib, rich, pyyaml, huggingface_hub, safetensors, regex, ...
# (CPython 3.12, x86-64). They go to .whl/ (ignored by git), at the versions of requirements.lock.
#
#   bash scripts/fetch_device_wheels.sh            # SKIP="hdf5plugin" to leave a package out
#
# torch/torchvision are never fetched: the GPU machine has its own build. pydensecrf2 has no binary
# wheel on PyPI, so it is built here from its sdist with a local CPython 3.12 (PYTHON312=/path, or
# python3.12 on PATH or under pyenv); without one the check runs its pseudo masks without CRF and
# says so in its table. The wheels plus the repository must stay under the 64 MiB a device call
# carries: the script prints the total and fails above it.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${WHEEL_DIR:-.whl}
PYTHON=${PYTHON:-python3}
LIMIT_BYTES=$((64 * 1024 * 1024))
# What the import chains of wsss (open_clip), wsss_mmseg (mmseg, mmengine, mmcv-lite) and the new
# store codec (hdf5plugin) and the COCO masks (pycocotools) need beyond the machine's packages (checked with the wheels' METADATA).
PACKAGES=(open_clip_torch ftfy wcwidth mmengine mmsegmentation mmcv-lite addict yapf platformdirs termcolor prettytable hdf5plugin pycocotools)
SKIP=${SKIP:-}

locked_version() {  # version of $1 in requirements.lock (names compared case- and -/_-insensitively)
    local wanted
    wanted=$(echo "$1" | tr 'A-Z_' 'a-z-')
    while IFS='=' read -r name _ version; do
        if [ "$(echo "$name" | tr 'A-Z_' 'a-z-')" = "$wanted" ]; then echo "$version"; return; fi
    done < <(grep -E '^[A-Za-z0-9_.-]+==' requirements.lock)
    echo "$1 is not pinned in requirements.lock" >&2
    return 1
}

mkdir -p "$DEST"
# One version of each package only: two make the device's `pip install .whl/*.whl` fail.
find "$DEST" -type f -name '*.whl' ! -name 'pydensecrf2-*-cp312-*.whl' -delete

pins=()
for package in "${PACKAGES[@]}"; do
    case " $SKIP " in *" $package "*) echo "skipping $package"; continue ;; esac
    pins+=("$package==$(locked_version "$package")")
done
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${pins[@]}"

crf_version=$(locked_version pydensecrf2)
if ls "$DEST"/pydensecrf2-"$crf_version"-cp312-*.whl >/dev/null 2>&1; then
    echo "pydensecrf2 $crf_version: cp312 wheel already built"
else
    find "$DEST" -type f -name 'pydensecrf2-*.whl' -delete
    python312=${PYTHON312:-$(command -v python3.12 || true)}
    if [ -z "$python312" ] && command -v pyenv >/dev/null; then
        python312=$(ls "$(pyenv root)"/versions/3.12*/bin/python3.12 2>/dev/null | tail -1 || true)
    fi
    if [ -n "$python312" ] && "$python312" -m pip --version >/dev/null 2>&1; then
        echo "building pydensecrf2 $crf_version for CPython 3.12 with $python312 (a few minutes)"
        "$python312" -m pip wheel --quiet --no-deps -w "$DEST" "pydensecrf2==$crf_version"
    else
        echo "WARNING: no CPython 3.12 here to build pydensecrf2; the GPU check will run without CRF" >&2
    fi
fi

wheels=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
repository=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | awk '/total$/ {sum += $1} END {print sum + 0}')
echo "wheels: $(ls "$DEST"/*.whl | wc -l) files, $((wheels / 1024 / 1024)) MiB; with the repository" \
     "$(((wheels + repository) / 1024 / 1024)) MiB of the $((LIMIT_BYTES / 1024 / 1024)) MiB a device call carries"
if [ $((wheels + repository)) -gt "$LIMIT_BYTES" ]; then
    echo "too large for one device call: leave a package out with SKIP=..." >&2
    exit 1
fi
