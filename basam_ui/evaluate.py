"""`basam-ui eval`: vanilla SAM against BA-SAM across input sizes on a labelled folder.

The paper's Table 1 protocol: prompt each image from its ground truth, predict one mask
(multimask_output=False, so every method answers with SAM's single-mask head), and
measure the MAE between the mask probability map (sigmoid of the logits, at the mask's
size) and the binary ground truth; IoU and Dice of the thresholded mask (logits > 0) too.

`run_eval` does the work and is what tests call; `main` only turns CLI arguments into a
call of it. Outputs in the output folder:

- results.csv      one row per image x size x method x prompt (appended to; a re-run skips
                   the rows already there, so it only encodes what is missing)
- summary.md/.csv  mean MAE / IoU / Dice per prompt, method and size, with
                   delta_diff = (MAE at the size - MAE at the smallest size) x 100
- mae_vs_size.png  mean MAE against size, one line per method, one panel per prompt
- skipped.csv      unpaired files, unreadable images or masks, empty masks
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

from .basam.config import BASAMConfig
from .datasets import Pair, load_mask, pair_folder
from .metrics import dice, iou, mae, probability

if TYPE_CHECKING:
    from .segmenter import ImageEmbedding, Segmenter

PROMPT_KINDS = ("point", "center", "box")
RESULT_COLUMNS = (
    "model", "precision", "image", "mask", "method", "nsf", "bmam", "beta", "size", "prompt", "prompt_xy",
    "height", "width", "mae", "iou", "dice", "score", "encode_s", "predict_s",
)  # fmt: skip
SUMMARY_COLUMNS = ("model", "prompt", "method", "size", "images", "mae", "delta_diff", "iou", "dice", "encode_s")
SKIPPED_COLUMNS = ("image", "mask", "reason")


def methods_for(beta: float, ablation: bool = False) -> dict[str, BASAMConfig]:
    """The settings compared, by name: vanilla SAM and BA-SAM (NSF + BM-AM), and with
    `ablation` also NSF only and BM-AM only."""
    methods = {"vanilla": BASAMConfig.vanilla(), "BA-SAM": BASAMConfig(nsf=True, bmam=True, beta=beta)}
    if ablation:
        methods["NSF only"] = BASAMConfig(nsf=True, bmam=False, beta=beta)
        methods["BM-AM only"] = BASAMConfig(nsf=False, bmam=True, beta=beta)
    return methods


# ---------------------------------------------------------------- prompts from the ground truth


@dataclass(frozen=True)
class Prompt:
    """SAM prompt arguments in image pixel coordinates (x, y)."""

    kind: str
    point_coords: Optional[np.ndarray] = None  # (1, 2)
    point_labels: Optional[np.ndarray] = None  # (1,)
    box: Optional[np.ndarray] = None  # (4,) x0 y0 x1 y1

    def describe(self) -> str:
        values = self.box if self.box is not None else self.point_coords[0]
        return " ".join(f"{v:g}" for v in values)

    def scaled(self, sx: float, sy: float) -> "Prompt":
        """The same prompt for the image resized by (sx, sy)."""
        if self.box is not None:
            return Prompt(self.kind, box=self.box * np.array([sx, sy, sx, sy]))
        return Prompt(self.kind, self.point_coords * np.array([sx, sy]), self.point_labels)


def make_prompt(kind: str, gt: np.ndarray, seed: int, stem: str) -> Prompt:
    """A prompt made from the boolean ground truth `gt` (must have a foreground pixel).

    point: one foreground pixel drawn with a generator seeded by (`seed`, `stem`), so every
    method and size gets the same point; center: the foreground pixel farthest from the
    background and the image border (cv2.distanceTransform); box: the box around the
    foreground pixels' areas, x1 = last column + 1 (so a one-pixel-wide object still has
    a box with x1 > x0, which the Segmenter requires).
    """
    ys, xs = np.nonzero(gt)
    if len(xs) == 0:
        raise ValueError("the ground-truth mask is empty")
    if kind == "point":
        rng = np.random.default_rng([seed, zlib.crc32(stem.encode())])  # crc32: stable across runs
        i = int(rng.integers(len(xs)))
        return Prompt(kind, np.array([[xs[i], ys[i]]], dtype=np.float64), np.array([1]))
    if kind == "center":
        import cv2

        # a zero border so pixels at the image edge count as near the boundary
        padded = np.pad(gt.astype(np.uint8), 1)
        dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return Prompt(kind, np.array([[x, y]], dtype=np.float64), np.array([1]))
    if kind == "box":
        return Prompt(kind, box=np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64))
    raise ValueError(f"unknown prompt kind {kind!r}; expected one of {', '.join(PROMPT_KINDS)}")


# ---------------------------------------------------------------- the run


@dataclass
class EvalResult:
    """What one `run_eval` call measured and wrote."""

    rows: list[dict[str, Any]]  # the results of this run's images/sizes/methods/prompts (old and new)
    summary: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    new_rows: int
    encoder_calls: int  # encoder passes run by this call
    files: dict[str, Path] = field(default_factory=dict)


def check_sizes(sizes: Sequence[int]) -> list[int]:
    """Sorted distinct sizes; ValueError unless each is a multiple of 16 and >= 256."""
    bad = [s for s in sizes if s < 256 or s % 16]
    if bad or not sizes:
        raise ValueError(f"sizes must be multiples of 16 and >= 256, got {list(sizes)}")
    return sorted(set(int(s) for s in sizes))


def run_eval(
    segmenter: "Segmenter",
    pairs: Sequence[Pair],
    sizes: Sequence[int],
    prompts: Sequence[str],
    methods: Mapping[str, BASAMConfig],
    out_dir: str | Path,
    seed: int = 0,
    limit: Optional[int] = None,
    *,
    unpaired: Sequence[dict[str, str]] = (),
    progress: bool = False,
) -> EvalResult:
    """Evaluate every pair (the first `limit`) at every size with every method and prompt.

    `segmenter` is a `basam_ui.segmenter.Segmenter`; its model's identity goes in the CSV,
    so rows of other weights are never reused, and so does its encoder precision (rows of
    another precision are not reused either). Each (image, size, method) is encoded once
    for all prompts, and not at all when results.csv already has all its rows. Unreadable
    images or masks and empty masks are reported on stderr and in skipped.csv, not fatal.
    """
    from tqdm import tqdm

    from .image_io import load_image

    sizes = check_sizes(sizes)
    prompts = list(dict.fromkeys(prompts))
    unknown = [p for p in prompts if p not in PROMPT_KINDS]
    if unknown or not prompts:
        raise ValueError(f"prompts must be among {', '.join(PROMPT_KINDS)}, got {list(prompts)}")
    if not methods:
        raise ValueError("no methods to evaluate")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        pairs = list(pairs)[:limit]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "results.csv"
    done = {_key(row): row for row in _read_results(csv_path)}
    skipped = [dict(s) for s in unpaired]
    model = segmenter.model.identity
    calls_before = segmenter.encoder_calls
    new_rows = 0
    wanted: list[tuple] = []

    with _ResultWriter(csv_path) as writer:
        for pair in tqdm(pairs, desc="eval", unit="image", disable=not progress, file=sys.stderr):
            base = {"model": model, "precision": segmenter.encoder_precision, "image": pair.image.name,
                    "mask": pair.mask.name}  # fmt: skip
            keys = {
                (size, name, kind): _key({**base, "method": name, "beta": cfg.slope, "size": size, "prompt": kind})
                for size in sizes
                for name, cfg in methods.items()
                for kind in prompts
            }
            todo = {k for k, key in keys.items() if key not in done}
            if todo:
                try:
                    image, gt, image_prompts = _load_case(load_image, pair, prompts, seed)
                except (ValueError, OSError) as exc:  # unreadable, empty or mismatched: skip the image
                    skipped.append({"image": pair.image.name, "mask": pair.mask.name, "reason": str(exc)})
                    tqdm.write(f"skipped {pair.image.name}: {exc}", file=sys.stderr)
                    continue
            wanted.extend(keys.values())
            for size in sizes:
                for name, cfg in methods.items():
                    kinds = [kind for kind in prompts if (size, name, kind) in todo]
                    if not kinds:
                        continue
                    start = _now()
                    embedding = segmenter.embed(image, resolution=size, config=cfg)
                    encode_s = _now() - start
                    for kind in kinds:
                        row = _measure(segmenter, embedding, image_prompts[kind], gt)
                        row.update(base, method=name, nsf=cfg.nsf, bmam=cfg.bmam, beta=cfg.slope, size=size)
                        row.update(prompt=kind, encode_s=round(encode_s, 4))
                        writer.write(row)
                        done[_key(row)] = row
                        new_rows += 1
                    del embedding  # never needed again: let the cache's LRU reclaim it

    rows = [done[key] for key in wanted]
    summary = summarise(rows)
    files = {
        "results": csv_path,
        "skipped": _write_csv(out_dir / "skipped.csv", SKIPPED_COLUMNS, skipped),
        "summary_csv": _write_csv(out_dir / "summary.csv", SUMMARY_COLUMNS, summary),
        "summary_md": out_dir / "summary.md",
        "plot": out_dir / "mae_vs_size.png",
    }
    files["summary_md"].write_text(summary_markdown(summary), encoding="utf-8")
    plot_mae(summary, files["plot"])
    return EvalResult(rows, summary, skipped, new_rows, segmenter.encoder_calls - calls_before, files)


def _load_case(load_image: Any, pair: Pair, prompts: Sequence[str], seed: int) -> tuple:
    """The image, its ground truth at the mask's size, and the prompts in image coordinates.

    Raises ValueError for an unreadable file, an empty mask, or a mask whose aspect ratio
    differs from the image's. A mask at another scale is fine: prompts are scaled to the
    image, and the metrics are computed at the mask's size.
    """
    image = load_image(pair.image)
    gt = load_mask(pair.mask)
    if not gt.any():
        raise ValueError(f"empty ground-truth mask {pair.mask.name}")
    (h, w), (gh, gw) = image.shape[:2], gt.shape
    if abs(h / w - gh / gw) > 0.01 * gh / gw:
        raise ValueError(f"image is {w}x{h} px but its mask {pair.mask.name} is {gw}x{gh} px")
    made = {kind: make_prompt(kind, gt, seed, pair.image.stem) for kind in prompts}
    if (h, w) != (gh, gw):  # prompts live on the mask's grid; move them to the image's
        made = {kind: p.scaled(w / gw, h / gh) for kind, p in made.items()}
    return image, gt, made


def _measure(segmenter: "Segmenter", embedding: "ImageEmbedding", prompt: Prompt, gt: np.ndarray) -> dict[str, Any]:
    """One prediction (single-mask output) and its metrics against `gt`, at gt's size."""
    start = _now()
    masks, scores, _ = segmenter.predict_with(
        embedding,
        point_coords=prompt.point_coords,
        point_labels=prompt.point_labels,
        box=prompt.box,
        multimask_output=False,
        return_logits=True,
    )
    logits = _to_numpy(masks)[0]
    predict_s = _now() - start
    if logits.shape != gt.shape:
        import cv2

        logits = cv2.resize(logits.astype(np.float32), gt.shape[::-1], interpolation=cv2.INTER_LINEAR)
    binary = logits > 0
    return {
        "prompt_xy": prompt.describe(),
        "height": gt.shape[0],
        "width": gt.shape[1],
        "mae": round(mae(probability(logits), gt), 6),
        "iou": round(iou(binary, gt), 6),
        "dice": round(dice(binary, gt), 6),
        "score": round(float(_to_numpy(scores).reshape(-1)[0]), 6),
        "predict_s": round(predict_s, 4),
    }


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _now() -> float:
    """A timestamp after the GPU has finished its queued work, so timings are real."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def _key(row: Mapping[str, Any]) -> tuple:
    """What identifies a result: a re-run skips rows whose key is already in results.csv."""
    return (row["model"], row["precision"], row["image"], row["method"], float(row["beta"]), int(row["size"]),
            row["prompt"])  # fmt: skip


def _read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of an existing results.csv with numbers parsed; [] when there is none."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != RESULT_COLUMNS:
            raise ValueError(f"{path} has other columns than basam-ui eval writes; use another --out folder")
        rows = list(reader)
    for row in rows:
        for name in ("size", "height", "width"):
            row[name] = int(row[name])
        for name in ("beta", "mae", "iou", "dice", "score", "encode_s", "predict_s"):
            row[name] = float(row[name])
        for name in ("nsf", "bmam"):
            row[name] = row[name] == "True"
    return rows


class _ResultWriter:
    """Appends rows to results.csv, flushing each so an interrupted run can resume."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> "_ResultWriter":
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.file = self.path.open("a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.file, RESULT_COLUMNS)
        if new:
            self.writer.writeheader()
        return self

    def write(self, row: Mapping[str, Any]) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- summary, table, plot


def summarise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean metrics per (model, prompt, method, size), in first-seen method/prompt order and
    ascending size, with delta_diff = (MAE - MAE at the smallest size) x 100 (the paper's
    Δdiff: 0.601 - 0.421 -> 18.0); None at the smallest size itself."""
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["model"], row["prompt"], row["method"], int(row["size"]))].append(row)
    order = {k: i for i, k in enumerate(dict.fromkeys((r["model"], r["prompt"], r["method"]) for r in rows))}
    summary, smallest = [], {}
    for model, prompt, method, size in sorted(groups, key=lambda g: (order[g[:3]], g[3])):
        group = groups[(model, prompt, method, size)]
        mean_mae = float(np.mean([r["mae"] for r in group]))
        first = (model, prompt, method) not in smallest  # sizes come in ascending order
        base = smallest.setdefault((model, prompt, method), mean_mae)
        summary.append(
            {
                "model": model,
                "prompt": prompt,
                "method": method,
                "size": size,
                "images": len(group),
                "mae": round(mean_mae, 6),
                "delta_diff": None if first else round((mean_mae - base) * 100, 4),
                "iou": round(float(np.mean([r["iou"] for r in group])), 6),
                "dice": round(float(np.mean([r["dice"] for r in group])), 6),
                "encode_s": round(float(np.mean([r["encode_s"] for r in group])), 4),
            }
        )
    return summary


def summary_markdown(summary: Sequence[Mapping[str, Any]]) -> str:
    """The summary as Markdown tables in the layout of the paper's Table 1, one per prompt."""
    lines: list[str] = []
    by_prompt: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for row in summary:
        by_prompt[(row["model"], row["prompt"])].append(row)
    for (model, prompt), rows in by_prompt.items():
        lines += [
            f"### {model}, prompt: {prompt} (MAE lower is better; Δdiff = (MAE − MAE at {rows[0]['size']}) × 100)",
            "",
            "| method | size | MAE ↓ | Δdiff (%) | IoU ↑ | Dice ↑ | encode s | images |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            delta = "–" if r["delta_diff"] is None else f"{r['delta_diff']:+.1f}"
            lines.append(
                f"| {r['method']} | {r['size']} | {r['mae']:.3f} | {delta} | {r['iou']:.3f} | "
                f"{r['dice']:.3f} | {r['encode_s']:.2f} | {r['images']} |"
            )
        lines.append("")
    return "\n".join(lines) if lines else "No results.\n"


def plot_mae(summary: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Mean MAE against size, one line per method, one panel per prompt, as a PNG.

    Uses the Agg canvas directly (no pyplot), so it changes no global matplotlib state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = list(dict.fromkeys(r["prompt"] for r in summary)) or ["(none)"]
    fig = Figure(figsize=(4.5 * len(panels), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, prompt in zip(axes, panels):
        rows = [r for r in summary if r["prompt"] == prompt]
        for method in dict.fromkeys(r["method"] for r in rows):
            line = [r for r in rows if r["method"] == method]
            ax.plot([r["size"] for r in line], [r["mae"] for r in line], marker="o", label=method)
        ax.set_xticks(sorted({r["size"] for r in rows}))
        ax.set_title(f"prompt: {prompt}")
        ax.set_xlabel("input size S (px)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean MAE (lower is better)")
    fig.suptitle(", ".join(dict.fromkeys(r["model"] for r in summary)))
    if summary:
        axes[0].legend()
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------- CLI


def main(args: argparse.Namespace) -> int:
    """`basam-ui eval`: pair the folders, load the model, run, print the summary."""
    from .loading import CheckpointError, load_sam, random_sam
    from .segmenter import EncoderOutOfMemory, Segmenter

    try:
        sizes = check_sizes(args.sizes)
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        methods = methods_for(args.beta, args.ablation)
        pairing = pair_folder(args.images, args.masks)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    unpaired = [{"image": p.name, "mask": "", "reason": "no mask found"} for p in pairing.unpaired_images]
    unpaired += [{"image": "", "mask": p.name, "reason": "no image found"} for p in pairing.unpaired_masks]
    for item in unpaired:
        print(f"unpaired: {item['image'] or item['mask']} ({item['reason']})", file=sys.stderr)
    if not pairing.pairs:
        print(f"error: no image/mask pairs in {pairing.images_dir} and {pairing.masks_dir}", file=sys.stderr)
        return 1
    print(f"{len(pairing.pairs)} pairs in {pairing.images_dir} + {pairing.masks_dir}", file=sys.stderr)

    try:
        if args.random_weights:
            sam = random_sam(args.model or "vit_t", seed=0, device=args.device)
        else:
            sam = load_sam(args.model, args.checkpoint, args.device, checkpoint_dir=args.checkpoint_dir)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # each embedding is used for one (image, size, method) and then dropped: a small cache does
    segmenter = Segmenter(
        sam, cache_bytes=256 << 20, cache_dir=getattr(args, "cache_dir", None), precision=getattr(args, "precision", "auto")
    )
    print(f"image encoder precision: {segmenter.encoder_precision} (asked: {segmenter.precision})", file=sys.stderr)
    try:
        result = run_eval(
            segmenter, pairing.pairs, sizes, args.prompt, methods, args.out, args.seed, args.limit,
            unpaired=unpaired, progress=True,
        )  # fmt: skip
    except EncoderOutOfMemory as exc:
        print(f"error: {exc}. The rows measured so far are kept in {args.out}/results.csv; "
              "run again with smaller --sizes and they are reused.", file=sys.stderr)  # fmt: skip
        return 1
    print(summary_markdown(result.summary))
    print(
        f"{result.new_rows} new rows, {result.encoder_calls} encoder passes, {len(result.skipped)} skipped; "
        f"wrote {', '.join(str(p) for p in result.files.values())}",
        file=sys.stderr,
    )
    return 0
