"""The `basam-ui` command: parses arguments and hands them to the app, downloader,
benchmarks and evaluation. No work is done here."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import __version__, bench
from .checkpoints import CHECKPOINT_DIR_ENV
from .vocabulary import (
    BROWSER_DECODE_MAX_SIZE, DATASET_FORMAT_LABELS, DATASET_FORMATS, DECODE_MODES, DEFAULT_BETA, DEFAULT_CACHE_GB,
    DEFAULT_DECODE, DEFAULT_DISK_GB, DEFAULT_MAX_SIZE, DEFAULT_MODEL_TYPE, DEFAULT_PRECISION, DEFAULT_SIZE,
    IMPORT_FORMATS, MODEL_TYPES, PRECISION_HELP, PRECISIONS, PROMPT_KINDS, SETTING_NAMES,
)  # fmt: skip


def _add_model_options(p: argparse.ArgumentParser, *, model_default: Optional[str]) -> None:
    p.add_argument(
        "--model",
        choices=MODEL_TYPES,
        default=model_default,
        help="model type: vit_t (MobileSAM), vit_b, vit_l or vit_h"
        + (f" (default: {model_default})" if model_default else " (default: inferred from --checkpoint, else vit_t)"),
    )
    p.add_argument("--checkpoint", metavar="PATH", help="a checkpoint file to load instead of the registry file")
    p.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help=f"checkpoint folder (default: ${CHECKPOINT_DIR_ENV}, else ./checkpoints when it exists, "
        "else ~/.cache/basam-ui/checkpoints)",
    )
    p.add_argument("--device", help="torch device, e.g. cuda, cuda:1, mps, cpu (default: CUDA, then MPS, then CPU)")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="use seeded untrained weights instead of a checkpoint (for trying things out; masks are meaningless)",
    )
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                   help=f"{PRECISION_HELP} (default: {DEFAULT_PRECISION})")


def _add_disk_cache_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-disk-gb",
        type=float,
        default=DEFAULT_DISK_GB,
        metavar="GB",
        help="bound on the disk embedding cache (--cache-dir); past it the least recently used files are "
        f"deleted (default: {DEFAULT_DISK_GB:g})",
    )


def _add_ray_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run on a Ray cluster: ADDRESS (e.g. ray://head:10001 or head:6379), else $RAY_ADDRESS, else a "
        'cluster started with `ray start` here, else a new local one. Needs pip install "basam-ui[ray]"',
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="Ray workers, one model each (default: one per GPU when the cluster has GPUs, else one per node)",
    )


def _add_app_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to serve the app on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port to serve the app on (default: 7860)")
    p.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    p.add_argument(
        "--auth",
        action="append",
        metavar="USER:PASSWORD",
        help="require this login for the page, its files and the API (repeatable; other users of this "
        "machine can see command lines: --auth-file keeps passwords out of them)",
    )
    p.add_argument(
        "--auth-file",
        metavar="FILE",
        help="require one of the logins in FILE, one USER:PASSWORD a line (# comments allowed); "
        "FILE must be private (chmod 600)",
    )
    p.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="serve on a non-loopback --host or with --share without any login (refused otherwise)",
    )
    p.add_argument(
        "--max-size",
        type=int,
        default=DEFAULT_MAX_SIZE,
        metavar="S",
        help=f"largest inference size S offered in the app, and the cap for 'native' (default: {DEFAULT_MAX_SIZE})",
    )
    p.add_argument(
        "--cache-gb", type=float, default=DEFAULT_CACHE_GB, metavar="GB",
        help=f"embedding cache size in memory, in GB (default: {DEFAULT_CACHE_GB:g})"
    )
    p.add_argument("--cache-dir", metavar="DIR", help="also keep embeddings on disk here, reused across restarts")
    _add_disk_cache_option(p)
    p.add_argument(
        "--decode", choices=DECODE_MODES, default=DEFAULT_DECODE,
        help=f"where clicks are decoded: auto (in the browser up to S={BROWSER_DECODE_MAX_SIZE}, once the "
        "decoder is exported; on the server otherwise), browser (the same at any S) or server (default: "
        f"{DEFAULT_DECODE})",
    )  # fmt: skip


def _add_project_commands(sub: argparse._SubParsersAction) -> None:
    db_help = "the project database (default: DIR/.basam-ui/project.sqlite; use this when DIR is read-only)"
    ann = sub.add_parser(
        "annotate",
        help="annotate a folder of images (objects with classes, saved as you go)",
        description="Serve the annotation page on the images under DIR (recursively). Work is saved to a "
        "SQLite database as it is done.",
    )
    ann.add_argument("dir", metavar="DIR", help="folder of images")
    ann.add_argument(
        "--labels", metavar="A,B,...", help="comma-separated class names (default on a new project: object)"
    )
    ann.add_argument("--db", metavar="PATH", help=db_help)
    _add_team_options(ann)
    _add_model_options(ann, model_default=None)
    _add_app_options(ann)

    exp = sub.add_parser(
        "export",
        help=f"export an annotation project as a dataset ({', '.join(DATASET_FORMAT_LABELS.values())})",
        description="Write the objects of the done images (every image with objects with --all) as COCO "
        "instances JSON, PNG label maps, YOLO segmentation labels, GeoJSON features (QuPath) or DICOM "
        "Segmentations (one per annotated DICOM image), with report.md. Where objects overlap, the later one "
        "lies on top.",
    )
    exp.add_argument("dir", metavar="DIR", help="the project's folder of images")
    exp.add_argument("--db", metavar="PATH", help=db_help)
    exp.add_argument("--format", required=True, choices=DATASET_FORMATS, help="dataset format")
    exp.add_argument("--all", action="store_true", help="every image that has objects, not only the done ones")
    exp.add_argument("--polygons", action="store_true", help="COCO: polygons instead of RLE (holes are filled)")
    exp.add_argument(
        "--copy-images", action="store_true",
        help="copy the images into OUT/images/ (YOLO: instead of linking to them; COCO and PNG: also write images/)",
    )  # fmt: skip
    exp.add_argument(
        "--val", type=float, metavar="FRACTION",
        help="YOLO: put this share of the images (drawn with --seed) in the val list instead of val = train",
    )  # fmt: skip
    exp.add_argument("--seed", type=int, default=0, help="seed of the --val split (default: 0)")
    exp.add_argument(
        "--keep-uids", action="store_true",
        help="COCO: write the DICOM Study, Series and SOP Instance UIDs into the images' attributes (they identify "
        "a study: left out by default)",
    )  # fmt: skip
    exp.add_argument(
        "--seg-labels", metavar="FILE",
        help="dicom-seg: segment codes per class, a JSON or YAML labels file (default: SCT Tissue for every class)",
    )  # fmt: skip
    exp.add_argument("--reviewed-only", action="store_true", help="only the images a reviewer accepted whole")
    exp.add_argument("--include-rejected", action="store_true", help="also the objects a reviewer rejected")
    exp.add_argument("--include-proposals", action="store_true",
                     help='also the pending proposals (class "proposal", attributes.source = "proposal")')
    exp.add_argument("--out", required=True, metavar="OUT", help="output folder (made if needed)")
    _add_import_and_propose(sub, db_help)


def _add_team_options(p: argparse.ArgumentParser) -> None:
    """annotate's options for a team: reviewers, double annotation, background proposals."""
    p.add_argument("--reviewers", metavar="NAME,...",
                   help="comma-separated names (login names when logins are on) who may review the images marked "
                   "done; kept in the project")  # fmt: skip
    p.add_argument("--overlap", type=float, metavar="FRACTION",
                   help="hand this share of the images to two annotators each, independently (kept in the project)")
    p.add_argument("--no-background-proposals", action="store_true",
                   help="do not compute proposals in the background (the page's setting starts unticked)")


def _add_import_and_propose(sub: argparse._SubParsersAction, db_help: str) -> None:
    imp = sub.add_parser(
        "import",
        help="add existing annotations (COCO, YOLO-seg, PNG label maps, LabelMe) to a project as objects",
        description="Add the annotations of SOURCE to the project of DIR as objects to correct (attributes.source = "
        '"imported"), matched to the images by path, classes created by name, image statuses unchanged. One '
        "transaction: a malformed file changes nothing and says where; annotations of images not in the project "
        "are listed and skipped.",
    )  # fmt: skip
    imp.add_argument("dir", metavar="DIR", help="the project's folder of images")
    imp.add_argument("source", metavar="SOURCE", help="the file or folder to import")
    imp.add_argument("--format", required=True, choices=IMPORT_FORMATS, help="the source's format")
    imp.add_argument("--annotator", default="", metavar="NAME", help="recorded as the objects' annotator (default: none)")
    imp.add_argument("--db", metavar="PATH", help=db_help)

    pro = sub.add_parser(
        "propose",
        help="compute automatic mask proposals for a project's images (here or on a Ray cluster)",
        description="SAM's automatic mask generation (a point grid, filtered by predicted IoU and stability, NMS) "
        "on every image of DIR, stored in the project with the settings that made them, so the annotate page "
        "shows them (P) without computing them. Resumable: sets already stored are skipped; Ctrl-C keeps the "
        "finished ones.",
    )  # fmt: skip
    pro.add_argument("dir", metavar="DIR", help="the project's folder of images")
    pro.add_argument("--db", metavar="PATH", help=db_help)
    _add_model_options(pro, model_default=None)
    pro.add_argument("--size", default=str(DEFAULT_SIZE), metavar="S",
                     help=f"input size S or native (default: {DEFAULT_SIZE}, as the page)")
    pro.add_argument("--settings", nargs="+", choices=SETTING_NAMES, default=["basam"],
                     help="basam (NSF + BM-AM, default), vanilla (SAM's, for comparison), nsf, bmam")
    pro.add_argument("--beta", type=float, default=DEFAULT_BETA, help=f"BM-AM slope (default: {DEFAULT_BETA:g}, as the app)")
    pro.add_argument("--points-per-side", type=int, default=32, metavar="N", help="a grid of N x N points (default: 32)")
    pro.add_argument("--pred-iou-thresh", type=float, default=0.88, metavar="T",
                     help="keep masks whose predicted IoU is above T (default: 0.88, SAM's)")
    pro.add_argument("--stability-score-thresh", type=float, default=0.95, metavar="T",
                     help="keep masks whose stability score is at least T (default: 0.95, SAM's)")
    pro.add_argument("--cache-dir", metavar="DIR",
                     help="the disk embedding cache (default: DIR/.basam-ui/cache, where annotate looks)")
    _add_disk_cache_option(pro)
    _add_ray_options(pro)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="basam-ui",
        description="Segment Anything at native resolution with BA-SAM. With no command, launches the "
        "annotation app (vanilla SAM and BA-SAM side by side) on http://127.0.0.1:7860.",
    )
    parser.add_argument("--version", action="version", version=f"basam-ui {__version__}")
    _add_model_options(parser, model_default=None)
    _add_app_options(parser)

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_project_commands(sub)

    dl = sub.add_parser(
        "download",
        help="download official checkpoints",
        description="Download official checkpoints into the checkpoint folder, checking SHA-256. "
        "A failed download leaves nothing under the real file name.",
    )
    dl.add_argument(
        "model",
        nargs="?",
        default=DEFAULT_MODEL_TYPE,
        choices=MODEL_TYPES + ("all",),
        help=f"which checkpoint: {', '.join(MODEL_TYPES)} or all (default: {DEFAULT_MODEL_TYPE})",
    )
    dl.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help=f"where to save (default: ${CHECKPOINT_DIR_ENV}, else ./checkpoints when it exists, "
        "else ~/.cache/basam-ui/checkpoints)",
    )

    bench.add_parser(sub)

    ev = sub.add_parser(
        "eval",
        help="vanilla vs BA-SAM across sizes on a labelled folder",
        description="Measure vanilla SAM against BA-SAM across input sizes on a folder of images and "
        "ground-truth masks (the paper's Table 1 protocol): per-image CSV, summary table and plot.",
    )
    ev.add_argument("--images", required=True, metavar="DIR", help="folder of images")
    ev.add_argument("--masks", required=True, metavar="DIR", help="folder of ground-truth masks (paired by file stem)")
    _add_model_options(ev, model_default=None)
    ev.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048], metavar="S", help="input sizes (default: 1024 2048)")
    ev.add_argument(
        "--prompt",
        nargs="+",
        choices=PROMPT_KINDS,
        default=["point"],
        help="prompt made from the ground truth: point (a seeded random foreground pixel), center (the "
        "foreground pixel farthest from the boundary), box (its bounding box); several allowed (default: point)",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed for the random point prompt (default: 0)")
    ev.add_argument("--beta", type=float, default=DEFAULT_BETA, help=f"BM-AM slope for BA-SAM (default: {DEFAULT_BETA:g})")
    ev.add_argument("--ablation", action="store_true", help="also run NSF only and BM-AM only")
    ev.add_argument("--limit", type=int, metavar="N", help="use only the first N image pairs")
    ev.add_argument("--out", required=True, metavar="DIR", help="output folder (CSV, summary, plot)")
    ev.add_argument("--cache-dir", metavar="DIR", help="keep embeddings on disk here (e.g. made by precompute)")
    _add_disk_cache_option(ev)
    _add_ray_options(ev)

    pre = sub.add_parser(
        "precompute",
        help="encode a folder's images into the disk cache (here or on a Ray cluster)",
        description="Encode every image at every size with every setting into the disk embedding cache that "
        "the app, annotate and eval read, so they need no encoder pass. Resumable: what is cached is skipped. "
        "Unreadable files are reported and skipped.",
    )
    pre.add_argument(
        "images", nargs="+", metavar="IMAGES",
        help="image files or folders (searched recursively as annotate does; hidden folders skipped)",
    )  # fmt: skip
    _add_model_options(pre, model_default=None)
    pre.add_argument("--sizes", nargs="+", type=int, default=[2048], metavar="S", help="input sizes (default: 2048)")
    pre.add_argument(
        "--settings",
        nargs="+",
        choices=SETTING_NAMES,
        default=["vanilla", "basam"],
        help="vanilla, basam (NSF + BM-AM), nsf (NSF only), bmam (BM-AM only) (default: vanilla basam)",
    )
    pre.add_argument("--beta", type=float, default=DEFAULT_BETA, help=f"BM-AM slope (default: {DEFAULT_BETA:g}, as the app)")
    pre.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the disk cache to fill (default: FOLDER/.basam-ui/cache when IMAGES is one folder, where "
        "`basam-ui annotate FOLDER` looks)",
    )
    _add_disk_cache_option(pre)
    _add_ray_options(pre)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `basam-ui` console command."""
    args = build_parser().parse_args(argv)
    if args.command == "download":
        return _download(args)
    if args.command == "bench":
        return bench.main(args)
    if args.command == "eval":
        from .evaluation import evaluate

        return evaluate.main(args)
    if args.command == "precompute":
        from .jobs import precompute

        return precompute.main(args)
    if args.command == "export":
        from .jobs import export_dataset

        return export_dataset.main(args)
    if args.command == "import":
        from .jobs import import_annotations

        return import_annotations.main(args)
    if args.command == "propose":
        from .jobs import propose

        return propose.main(args)
    if args.command == "annotate":
        return _annotate(args)
    from .web.compare import serve

    return serve.main(args)


def _download(args: argparse.Namespace) -> int:
    from .checkpoints import DownloadError, download

    models = MODEL_TYPES if args.model == "all" else (args.model,)
    status = 0
    for model_type in models:
        try:
            path = download(model_type, args.checkpoint_dir)
        except DownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
        except KeyboardInterrupt:
            print("\ninterrupted: nothing was saved under the checkpoint's name", file=sys.stderr)
            return 130
        else:
            print(f"{model_type}: {path}")
    return status



def _annotate(args: argparse.Namespace) -> int:
    from .project import Project, ProjectError
    from .project.records import display_path

    labels = [name.strip() for name in (args.labels or "").split(",") if name.strip()]
    try:
        project = Project.open(args.dir, args.db, labels=labels or None)
        if args.reviewers is not None:
            project.set_reviewers(args.reviewers.split(","))
        if args.overlap is not None:
            project.set_overlap(args.overlap)
    except (ProjectError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    skipped = project.last_scan.skipped
    progress = project.progress()
    print(f"{args.dir}: {progress.total} images ({progress.done} done, {progress.missing} missing), "
          f"classes {', '.join(project.labels())}; database {project.db_path}")
    if project.reviewers():
        print(f"reviewers: {', '.join(project.reviewers())}")
    if skipped:
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        print(f"skipped (not images): {', '.join(map(display_path, skipped[:10]))}{more}")
    from .web.annotate.serve import main as serve_annotate_page

    return serve_annotate_page(args, project)

if __name__ == "__main__":
    sys.exit(main())
