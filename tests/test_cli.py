"""The command line: every option documented, and a light package import."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from basam_ui.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _check_documented(parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help, f"{parser.prog}: option {action.option_strings or action.dest} has no help"
        for option in action.option_strings:
            assert option in text, f"{parser.prog} --help does not show {option}"


@pytest.mark.parametrize(
    "path",
    [(), ("download",), ("bench",), ("bench", "encoder"), ("bench", "prompt"), ("bench", "project"), ("eval",),
     ("annotate",), ("export",), ("precompute",)],
)
def test_every_option_is_documented(path):
    parser = build_parser()
    for name in path:
        parser = _subparsers(parser)[name]
    _check_documented(parser)


def test_console_help_runs():
    for args in (["--help"], ["download", "--help"]):
        out = subprocess.run(
            [sys.executable, "-m", "basam_ui", *args], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert "--checkpoint-dir" in out.stdout


def test_import_is_light():
    code = "import sys, basam_ui; print(sorted(m for m in ('torch', 'gradio', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_annotate_takes_every_app_option():
    parser = build_parser()
    top = {o for a in parser._actions for o in a.option_strings} - {"-h", "--help", "--version"}
    annotate = {o for a in _subparsers(parser)["annotate"]._actions for o in a.option_strings}
    assert top <= annotate and {"--labels", "--db"} <= annotate
    args = parser.parse_args(["annotate", "data", "--labels", "a,b", "--db", "p.sqlite", "--model", "vit_b",
                              "--port", "8000", "--cache-gb", "1.5", "--random-weights"])
    assert (args.dir, args.labels, args.db, args.model, args.port, args.cache_gb) == ("data", "a,b", "p.sqlite",
                                                                                      "vit_b", 8000, 1.5)
