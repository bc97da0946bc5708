#!/bin/bash
# Copy the training data a GPU lease needs into .gpu_data/ (git-ignored), for the device
# tool to carry: the machine receives the checkout but not ../shared, and at most 64 MiB
# travel in all, so the two largest 7-Scenes/3DMatch folders (25 MB of near-duplicate
# frames of one sequence) stay behind. Then: run scripts/gpu_session.py there with
# PRODEPTH_DATA=.gpu_data.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${PRODEPTH_DATA:-../shared/data}
rm -rf .gpu_data
mkdir -p .gpu_data/train .gpu_data/sequences
cp -r "$src/sequences/davis_rollercoaster" .gpu_data/sequences/
for dir in "$src"/train/*/; do
    case $(basename "$dir") in
        7scenes_tsdfpy | 3dmatch_demo) ;;
        *) cp -r "$dir" .gpu_data/train/ ;;
    esac
done
du -sh .gpu_data
