#!/usr/bin/env bash
# Build (or re-check) the project venv from the pinned lock file.
#
#   scripts/setup.sh            # venv at ./.venv
#   WSSS_VENV=/path scripts/setup.sh
#
# Steps: python3 -m venv (if missing) -> pip install -r requirements.lock (every line pinned,
# so no unpinned torch can sneak in) -> pip install --no-deps -e . (the `wsss` console script).
# A stamp inside the venv holds the sha256 of requirements.lock + pyproject.toml (and the
# interpreter / paths); when it matches, the pip steps are skipped. The pinned-stack check
# (torch / torchvision / open_clip versions) runs every time and fails loudly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${WSSS_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PYTHON="${WSSS_PYTHON:-python3}"
LOCK="$ROOT/requirements.lock"
STAMP="$VENV/.wsss-setup.sha256"
PIPLOG="$VENV/.wsss-pip.log"

EXPECT_TORCH="2.14.1"
EXPECT_TORCHVISION="0.29.1"
EXPECT_OPEN_CLIP="3.3.0"

log() { printf '[setup] %s\n' "$*"; }
die() {
    printf '\n[setup] ERROR: %s\n\n' "$*" >&2
    exit 1
}

[ -f "$LOCK" ] || die "missing $LOCK"
[ -f "$ROOT/pyproject.toml" ] || die "missing $ROOT/pyproject.toml"
command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found (set WSSS_PYTHON)"

# --- 1. venv -----------------------------------------------------------------------------
mkdir -p "$VENV"
# Serialise concurrent setups on the same venv (two shells running the tests at once).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV/.wsss-setup.lock"
    flock 9
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' \
        || die "$("$PYTHON" -V 2>&1) is not supported: need Python >=3.11,<3.13 (set WSSS_PYTHON)"
    log "creating venv $VENV with $("$PYTHON" -V 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -c 'pass' 2>/dev/null || die "$VPY does not run; remove $VENV and rerun"

# --- 2. pip install (skipped when the stamp matches) ---------------------------------------
want="$({
    sha256sum "$LOCK" "$ROOT/pyproject.toml" | cut -d' ' -f1
    "$VPY" -VV
    echo "$ROOT"
    echo "$VENV"
} | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"

if [ "$want" = "$have" ] && [ -x "$VENV/bin/wsss" ]; then
    log "venv up to date ($VENV), skipping pip"
else
    rm -f "$STAMP"
    : >"$PIPLOG"
    pip_step() {
        local what="$1"
        shift
        log "$what (log: $PIPLOG)"
        local t0=$SECONDS
        if ! "$VPY" -m pip --disable-pip-version-check --no-input install --progress-bar off "$@" \
            >>"$PIPLOG" 2>&1; then
            # (the local mirrors' "Location ... is ignored" warnings are noise: drop them)
            echo "----- last 60 lines of $PIPLOG -----" >&2
            grep -v "^WARNING: Location '" "$PIPLOG" | tail -n 60 >&2 || true
            echo "-----" >&2
            die "pip failed: $what"
        fi
        log "  done in $((SECONDS - t0))s"
    }
    # Every line of the lock is name==version, so the resolver has nothing left to choose.
    pip_step "pip install -r requirements.lock" -r "$LOCK"
    # setuptools is pinned in the lock, so build the editable wheel with it (no isolated,
    # unpinned build env).
    pip_step "pip install --no-deps -e ." --no-deps --no-build-isolation -e "$ROOT"
fi

# --- 3. pinned-stack check (always) --------------------------------------------------------
log "checking torch / torchvision / open_clip versions"
check_out="$(
    HF_HUB_OFFLINE=1 EXPECT_TORCH="$EXPECT_TORCH" EXPECT_TORCHVISION="$EXPECT_TORCHVISION" \
        EXPECT_OPEN_CLIP="$EXPECT_OPEN_CLIP" "$VPY" - 2>&1 <<'PY'
import importlib
import os
import sys

want = {
    "torch": os.environ["EXPECT_TORCH"],
    "torchvision": os.environ["EXPECT_TORCHVISION"],
    "open_clip": os.environ["EXPECT_OPEN_CLIP"],
}
bad, good = [], []
for mod, expected in want.items():
    try:
        version = str(importlib.import_module(mod).__version__)
    except Exception as exc:  # noqa: BLE001 - report anything that stops the import
        bad.append(f"  {mod}: expected {expected}, import FAILED: {type(exc).__name__}: {exc}")
        continue
    # torch may carry a local tag (2.14.1+cu130); the release part must match exactly.
    if version.split("+")[0] != expected:
        bad.append(f"  {mod}: expected {expected}, found {version}")
    else:
        good.append(f"{mod} {version}")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(", ".join(good))
PY
)" || {
    rm -f "$STAMP"
    printf '%s\n' "$check_out" >&2
    die "pinned stack check FAILED for $VENV (see above).
  The venv does not hold the versions pinned in requirements.lock (torch==$EXPECT_TORCH,
  torchvision==$EXPECT_TORCHVISION, open_clip_torch==$EXPECT_OPEN_CLIP). Check the lock, then
  rebuild: rm -rf '$VENV' && bash scripts/setup.sh"
}
log "ok: $(printf '%s' "$check_out" | tail -n 1)"

# --- 4. offline page for `dvc plots show` (.dvc/config plots.html_template) --------------------
# vega, vega-lite and vega-embed inlined from the pinned vl-convert-python: charts render offline.
TEMPLATE="$ROOT/.dvc/plots/offline.html"
if [ ! -s "$TEMPLATE" ] || [ "$want" != "$have" ]; then
    PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "$VPY" -m wsss.plots.offline_html "$TEMPLATE" \
        | sed 's/^/[setup] /' || die "could not write $TEMPLATE (is vl-convert-python from requirements.lock installed?)"
fi

echo "$want" >"$STAMP"
