#!/usr/bin/env bash
# A photographer's folder: depth for every image under SRC, mirrored under DST, resumable.
# Re-running skips finished images; failures are listed at the end (exit code 1).
#   examples/folder_batch.sh ~/Pictures/shoot ~/Pictures/shoot-depth
set -euo pipefail
src=${1:?source folder}
dst=${2:?output folder}
prodepth depth "$src" --recursive -o "$dst" --colormap --json > "$dst.jsonl" || true
echo "failed:" >&2
grep '"status": "error"' "$dst.jsonl" >&2 || echo "  none" >&2
