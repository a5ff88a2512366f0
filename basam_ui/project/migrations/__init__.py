"""Numbered schema migrations of the project database, applied on open.

Each module `mNNN_<what>.py` holds `VERSION = NNN` and `upgrade(conn)`, which takes a database
at schema NNN - 1 to NNN inside the caller's transaction. A new database runs them all from 1;
an older one, those it lacks. Each migration commits together with `PRAGMA user_version`, so
a failure rolls back to the version before it and nothing is half-changed. A schema change
is one new module here plus a test that upgrades the version before it.

A migration that rebuilds a table others refer to (SQLite changes constraints only that way)
sets `FOREIGN_KEYS_OFF = True`: the runner turns foreign keys off before its transaction (the
pragma does nothing inside one), checks `PRAGMA foreign_key_check` before COMMIT (a
violation rolls the migration back) and turns them on again afterwards.
"""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3
from types import ModuleType


def _load() -> dict[int, ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("m") and info.name[1:4].isdigit():
            module = importlib.import_module(f"{__name__}.{info.name}")
            found[module.VERSION] = module
    if sorted(found) != list(range(1, len(found) + 1)):
        raise RuntimeError(f"project migrations must be numbered 1..N without gaps, found {sorted(found)}")
    return dict(sorted(found.items()))


MIGRATIONS = _load()
SCHEMA_VERSION = max(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    """The database's schema version (0 for a new, empty one)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def create(conn: sqlite3.Connection) -> None:
    """Build the latest schema in a new, empty database, inside the caller's transaction."""
    for module in MIGRATIONS.values():
        module.upgrade(conn)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def upgrade(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> list[int]:
    """Apply the migrations after the database's version, up to `target`, each in its own
    transaction with its version number. Returns the versions applied."""
    applied = []
    for number, module in MIGRATIONS.items():
        if number <= version(conn) or number > target:
            continue
        keys_off = getattr(module, "FOREIGN_KEYS_OFF", False)
        keys_were_on = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
        if keys_off:
            conn.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                module.upgrade(conn)
                if keys_off:
                    _check_foreign_keys(conn, number)
                conn.execute(f"PRAGMA user_version={number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            if keys_off and keys_were_on:
                conn.execute("PRAGMA foreign_keys=ON")
        applied.append(number)
    return applied


def _check_foreign_keys(conn: sqlite3.Connection, number: int) -> None:
    """RuntimeError when a row refers to one that does not exist (after a migration that ran
    with foreign keys off)."""
    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise RuntimeError(
            f"schema migration {number} would leave {len(broken)} broken reference(s) "
            f"(e.g. {table} row {rowid} -> {parent}); nothing was changed"
        )
