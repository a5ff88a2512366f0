"""`basam-ui eval`: vanilla SAM against BA-SAM across input sizes on a labelled folder.

The paper's Table 1 protocol: prompt each image from its ground truth, predict one mask
(multimask_output=False, so every method answers with SAM's single-mask head), and
measure the MAE between the mask probability map (sigmoid of the logits, at the mask's
size) and the binary ground truth; IoU and Dice of the thresholded mask (logits > 0) too.

`run_eval` does the work and is what tests call; `main` only turns CLI arguments into a
call of it. Each pair is measured by an `eval_pairs.PairJob`, here or, with `--ray`, on Ray
workers (`basam_ui.distributed`). Outputs in the output folder:

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
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

from ..basam.config import BASAMConfig
from .datasets import Pair, pair_folder
from ..vocabulary import DEFAULT_DISK_GB, PRESET_LABELS, PROMPT_KINDS, SETTING_NAMES, check_sizes, gb_to_bytes
from .pairs import PairJob, row_stamp

if TYPE_CHECKING:
    from ..jobs.distributed import WorkerPool
    from ..segmenter import Segmenter
RESULT_COLUMNS = (
    "model", "precision", "image", "mask", "method", "nsf", "bmam", "beta", "size", "prompt", "prompt_xy",
    "height", "width", "mae", "iou", "dice", "score", "encode_s", "predict_s",
)  # fmt: skip
SUMMARY_COLUMNS = ("model", "prompt", "method", "size", "images", "mae", "delta_diff", "iou", "dice", "encode_s")
SKIPPED_COLUMNS = ("image", "mask", "reason")


def methods_for(beta: float, ablation: bool = False) -> dict[str, BASAMConfig]:
    """The settings compared, by their names in results.csv (`vocabulary.PRESET_LABELS`):
    vanilla SAM and BA-SAM (NSF + BM-AM), and with `ablation` also NSF only and BM-AM only."""
    names = SETTING_NAMES if ablation else ("vanilla", "basam")
    return {PRESET_LABELS[name]: BASAMConfig.preset(name, beta) for name in names}


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


def run_eval(
    segmenter: Optional["Segmenter"],
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
    pool: Optional["WorkerPool"] = None,
) -> EvalResult:
    """Evaluate every pair (the first `limit`) at every size with every method and prompt.

    `segmenter` is a `basam_ui.segmenter.Segmenter` (None with `pool`: the pairs are
    measured on Ray workers, `basam_ui.distributed`); its model's identity and encoder
    precision go in the CSV, so rows of other weights or another precision are never reused.
    Rows are written as pairs finish. Each (image, size, method) is encoded once
    for all prompts, and not at all when results.csv already has all its rows. Unreadable
    images or masks and empty masks are reported on stderr and in skipped.csv, not fatal.
    """
    from tqdm import tqdm

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
    stamp = pool.same_on_each(row_stamp) if pool is not None else row_stamp(segmenter)
    wanted: dict[Pair, list[tuple]] = {}
    jobs = []
    for pair in pairs:
        base = {**dict(stamp), "image": pair.image.name, "mask": pair.mask.name}
        keys = {
            (size, name, kind): _key({**base, "method": name, "beta": cfg.slope, "size": size, "prompt": kind})
            for size in sizes
            for name, cfg in methods.items()
            for kind in prompts
        }
        wanted[pair] = list(keys.values())
        todo = [
            (size, name, cfg, tuple(kind for kind in prompts if keys[size, name, kind] not in done))
            for size in sizes
            for name, cfg in methods.items()
        ]
        todo = tuple(item for item in todo if item[3])
        if todo:
            jobs.append(PairJob(pair, stamp, todo, tuple(prompts), seed))

    new_rows = encoder_calls = 0
    skipped_now: dict[Pair, str] = {}
    order = {pair: i for i, pair in enumerate(wanted)}
    outcomes = pool.map(jobs) if pool is not None else (job(segmenter) for job in jobs)
    with _ResultWriter(csv_path) as writer:
        for outcome in tqdm(outcomes, total=len(jobs), desc="eval", unit="image", disable=not progress, file=sys.stderr):
            encoder_calls += outcome.encoder_calls
            if outcome.skipped is not None:  # unreadable, empty or mismatched: skip the image
                tqdm.write(f"skipped {outcome.pair.image.name}: {outcome.skipped}", file=sys.stderr)
                skipped_now[outcome.pair] = outcome.skipped
            for row in outcome.rows:
                writer.write(row)
                done[_key(row)] = row
                new_rows += 1

    for pair, reason in sorted(skipped_now.items(), key=lambda item: order[item[0]]):  # in pair order, however they came
        skipped.append({"image": pair.image.name, "mask": pair.mask.name, "reason": reason})
        del wanted[pair]
    rows = [done[key] for keys in wanted.values() for key in keys]
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
    return EvalResult(rows, summary, skipped, new_rows, encoder_calls, files)


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
    from ..cache import EmbeddingCache
    from ..models import CheckpointError, ModelSpec
    from ..segmenter import EncoderOutOfMemory, Segmenter

    try:
        sizes = check_sizes(args.sizes)
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        methods = methods_for(args.beta, args.ablation)
        # absolute paths: Ray workers may run in another folder (or on another machine)
        pairing = pair_folder(Path(args.images).expanduser().resolve(), Path(args.masks).expanduser().resolve())
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

    spec = ModelSpec.from_args(args)
    # each embedding is used for one (image, size, method) and then dropped: a small cache does
    cache_dir = getattr(args, "cache_dir", None)
    disk_bytes = gb_to_bytes(getattr(args, "cache_disk_gb", DEFAULT_DISK_GB))
    run = partial(
        run_eval, pairs=pairing.pairs, sizes=sizes, prompts=args.prompt, methods=methods, out_dir=args.out,
        seed=args.seed, limit=args.limit, unpaired=unpaired, progress=True,
    )  # fmt: skip
    try:
        if getattr(args, "ray", None) is not None:
            from ..jobs.distributed import RayUnavailable, run_on_ray

            try:
                with run_on_ray(spec, cache_dir, disk_bytes, address=args.ray or None, workers=args.workers) as pool:
                    result = run(None, pool=pool)
            except RayUnavailable as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        else:
            result = run(Segmenter.from_spec(spec, EmbeddingCache(256 << 20, cache_dir, disk_bytes=disk_bytes)))
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
