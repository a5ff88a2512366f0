"""Reading full-size DICOM images through basam_ui.sources: opening (header only), decoding and
windowing a mammogram-sized frame (16-bit MONOCHROME1, native and JPEG 2000 lossless) under
its file window and the automatic one, and a JPEG-baseline colour photograph.

    PYTHONPATH=.:tests python benchmarks/dicom_read.py [--rows 4096] [--cols 3328] [--repeat 3]

The files are made in a temporary folder by tests/dicoms.py's generators (no patient data).
Prints the median wall time of each step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import pydicom  # noqa: E402
from pydicom import uid  # noqa: E402

import dicoms  # noqa: E402
from basam_ui.sources import open_source  # noqa: E402


def median_time(step, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=3328)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        made = time.perf_counter()
        native = dicoms.mammogram(folder, "native.dcm", rows=args.rows, cols=args.cols).path
        ds = pydicom.dcmread(native)
        ds.compress(uid.JPEG2000Lossless, generate_instance_uid=False)
        ds.save_as(folder / "j2k.dcm")
        photo = dicoms.jpeg_photo(folder, "photo.dcm", rows=args.rows // 2, cols=args.cols // 2).path
        print(f"made the files in {time.perf_counter() - made:.1f} s "
              f"({native.stat().st_size / 1e6:.1f} MB native, {(folder / 'j2k.dcm').stat().st_size / 1e6:.1f} MB J2K)")
        for label, path in (("native 16-bit", native), ("JPEG 2000 lossless", folder / "j2k.dcm")):
            print(f"{label} {args.cols}x{args.rows}:")
            seconds = median_time(lambda: open_source(path), args.repeat)
            print(f"  open (header)                      {seconds * 1e3:8.1f} ms")
            for window in (None, "auto"):
                source = open_source(path, window=window)
                seconds = median_time(source.read, args.repeat)
                print(f"  read, window {source.window.key():<24}{seconds * 1e3:8.1f} ms")
        source = open_source(photo)
        seconds = median_time(source.read, args.repeat)
        print(f"JPEG baseline RGB {source.size[0]}x{source.size[1]}: read {seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
