"""The built package carries what the pages need besides Python: every subpackage's scripts and
stylesheets (canvas.js, canvas.css, annotate.js, vendored browser files) are package data, so a
wheel install serves the same pages as a clone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_built_wheel_holds_every_script_and_stylesheet(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "basam_ui", source / "basam_ui", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(tmp_path / "out"),
         str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "out").glob("basam_ui-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        str(path.relative_to(REPO)) for path in (REPO / "basam_ui").rglob("*")
        if path.suffix in (".js", ".css", ".mjs", ".wasm") or path.name in ("LICENSE", "VERSION")
    }  # fmt: skip
    assert {"basam_ui/web/common/canvas.js", "basam_ui/web/common/canvas.css", "basam_ui/web/annotate/annotate.js"} <= wanted
    missing = sorted(wanted - names)
    assert not missing, f"not in the wheel (declare them in pyproject's package-data): {missing}"
    assert "basam_ui/project/migrations/m001_initial.py" in names  # the numbered migrations are found as modules
