"""Low-res logits -> a full-resolution mask: torch's bilinear resize (what `decoder.
logits_to_image` runs) against OpenCV's, with the same coordinate map.

    PYTHONPATH=. python benchmarks/mask_resize.py [--size 2048] [--width 2048] [--height 1536]

One candidate's S/4 x S/4 logits (random, smooth) are resized to H x W and thresholded at 0,
as a click does. OpenCV gets the same map (output pixel y reads low-res coordinate
(y + 0.5) * h / (4 H) - 0.5, SAM's two resizes composed) through `cv2.warpAffine` with
INTER_LINEAR and a replicated border. Prints the median time of each, their ratio from the
same run, and how many mask pixels differ (float rounding only, if any).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from basam_ui.decoder import logits_to_image  # noqa: E402


def opencv_mask(low_res: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]) -> np.ndarray:
    (h, w), (height, width) = input_size, original_size
    sy, sx = h / (4.0 * height), w / (4.0 * width)  # output -> low-res scale
    # dst (x, y) -> src (sx * (x + 0.5) - 0.5, sy * (y + 0.5) - 0.5), given as the inverse map
    matrix = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(low_res, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE) > 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="S")
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1536)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    long_side = max(args.width, args.height)
    input_size = (round(args.height * args.size / long_side), round(args.width * args.size / long_side))
    grid = args.size // 4
    smooth = torch.nn.functional.interpolate(torch.randn(1, 1, grid // 16, grid // 16), size=(grid, grid), mode="bicubic")
    low_res = smooth[0, 0].numpy().astype(np.float32)
    times: dict[str, list[float]] = {"torch": [], "opencv": []}
    with torch.inference_mode():
        for _ in range(args.repeats):
            started = time.perf_counter()
            by_torch = (logits_to_image(torch.from_numpy(low_res), input_size, (args.height, args.width)) > 0).numpy()
            times["torch"].append(time.perf_counter() - started)
            started = time.perf_counter()
            by_opencv = opencv_mask(low_res, input_size, (args.height, args.width))
            times["opencv"].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    differ = int(np.count_nonzero(by_torch != by_opencv))
    print(f"S={args.size}, {args.width}x{args.height}, {torch.get_num_threads()} torch threads, "
          f"{cv2.getNumThreads()} OpenCV threads, median of {args.repeats}")
    print(f"  torch  (F.interpolate, bilinear): {medians['torch']:6.2f} ms")
    print(f"  OpenCV (warpAffine, INTER_LINEAR): {medians['opencv']:6.2f} ms   {medians['opencv'] / medians['torch']:.2f}x torch")
    print(f"  mask pixels that differ: {differ} of {by_torch.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
