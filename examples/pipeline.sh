#!/usr/bin/env bash
# prodepth in a shell pipeline: image bytes in on stdin, a 16-bit PNG out on stdout.
#   examples/pipeline.sh examples/scene.jpg > scene_depth.png
set -euo pipefail
cat "${1:-examples/scene.jpg}" | prodepth depth - -o - --tile 512
