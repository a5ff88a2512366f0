"""The test photographs kept in the repository (tests/data, with their NOTICE): four real
2048-2241 px photos from the MobileSAM project's demo assets (Apache License 2.0)."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CORGI = DATA / "corgi-2048x1365.jpg"


def photos() -> list[Path]:
    """The four photographs, sorted by name."""
    found = sorted(DATA.glob("*.jpg"))
    assert len(found) == 4, f"expected the four test photographs in {DATA}, found {found}"
    return found
