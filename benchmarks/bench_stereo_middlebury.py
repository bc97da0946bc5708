"""The synthesised right eye against real right images (Middlebury 2014 Motorcycle and the
2005 third-size scenes): PSNR of `prodepth stereo`'s eye, of the same warp rounding each pixel
to its nearest column instead of splatting it, and of the left image moved by its best single
offset (see prodepth_cli/stereo/check.py for the set-up).

    python benchmarks/bench_stereo_middlebury.py
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from unittest import mock

from prodepth_cli.data_root import SHARED_DATA
from prodepth_cli.stereo import warp
from prodepth_cli.stereo.check import check_pair, middlebury2005_pair, middlebury2014_pair


def pairs(gt: Path) -> list:
    found = []
    motorcycle = gt / "middlebury2014_Q" / "Motorcycle"
    if motorcycle.is_dir():
        found.append(middlebury2014_pair(motorcycle))
    third = gt / "middlebury2005_third"
    if third.is_dir():
        found += [middlebury2005_pair(d) for d in sorted(third.iterdir()) if d.is_dir()]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, default=SHARED_DATA / "gt")
    args = parser.parse_args()
    rounded = functools.partial(warp.warp_view, splat=False)
    header = ("scene", "splat dB", "round dB", "shifted dB", "offset", "pixels")
    print("{:<11} {:>8} {:>8} {:>10} {:>6} {:>7}".format(*header))
    for pair in pairs(args.gt):
        ours = check_pair(pair)
        with mock.patch.object(warp, "warp_view", rounded):  # the eye, not the scored pixels
            nearest = check_pair(pair)
        print(
            f"{pair.name:<11} {ours.psnr_synthesised:8.2f} {nearest.psnr_synthesised:8.2f} "
            f"{ours.psnr_shifted_left:10.2f} {ours.offset:6d} {ours.pixels:7d}"
        )


if __name__ == "__main__":
    main()
