"""Logins: where they come from (`--auth`, `--auth-file`, the BASAM_UI_AUTH secret of a
Space), the refusal to serve beyond this machine without them, and the login name of a
request. Gradio checks the logins (demo.launch(auth=...)): the page, its files and the API
then all need one. No Gradio import here.

A login is "user:password" (split at the first colon, so a password may contain colons);
in a file or the secret, one per line, blank lines and lines starting with # skipped, and
each line stripped of surrounding whitespace.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

AUTH_ENV = "BASAM_UI_AUTH"  # a Space's secret: the same lines as an --auth-file
LOOPBACK_NAMES = ("localhost",)

Login = tuple[str, str]


class AuthError(ValueError):
    """A login option that can't be used, or serving beyond this machine without one."""


def parse_login(text: str, where: str = "--auth") -> Login:
    """'user:password' -> (user, password). The user may not be empty or have surrounding
    spaces (Gradio strips the name typed at the login form), the password may not be empty."""
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise AuthError(f"{where}: a login must be USER:PASSWORD with neither part empty, got {_masked(text)!r}")
    if user != user.strip():
        raise AuthError(f"{where}: the user name {user!r} has spaces around it")
    return user, password


def parse_logins(text: str, where: str) -> list[Login]:
    """Logins from lines of 'user:password' (a file's or the secret's text)."""
    logins = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            logins.append(parse_login(line, f"{where}, line {number}"))
    return logins


def read_auth_file(path: str | os.PathLike) -> list[Login]:
    """Logins from a file that only its owner can read: a file that its group or others may
    access (mode & 0o077) is refused, as ssh refuses such a key."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthError(f"--auth-file {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthError(
            f"--auth-file {path} can be read by other users (mode {stat.filemode(mode)}): "
            f"make it private with `chmod 600 {path}`"
        )
    logins = parse_logins(text, f"--auth-file {path}")
    if not logins:
        raise AuthError(f"--auth-file {path} has no USER:PASSWORD line")
    return logins


def merge_logins(logins: Iterable[Login]) -> list[Login]:
    """The logins without repeats; one user with two different passwords is refused."""
    found: dict[str, str] = {}
    for user, password in logins:
        if found.setdefault(user, password) != password:
            raise AuthError(f"the user {user!r} is given twice with different passwords")
    return list(found.items())


def logins_from_options(auth: Optional[Iterable[str]], auth_file: Optional[str | os.PathLike]) -> list[Login]:
    """The logins of `--auth USER:PASSWORD` (repeatable) and `--auth-file FILE` together."""
    logins = [parse_login(text) for text in auth or ()]
    if auth_file:
        logins += read_auth_file(auth_file)
    return merge_logins(logins)


def logins_from_env(env: Mapping[str, str] = os.environ) -> list[Login]:
    """The logins in the BASAM_UI_AUTH secret (none when it is unset or empty)."""
    return merge_logins(parse_logins(env.get(AUTH_ENV, ""), AUTH_ENV))


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: localhost, 127.0.0.0/8, ::1."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


def check_exposure(host: str, share: bool, logins: list[Login], allow_anonymous: bool) -> None:
    """Refuse (AuthError) to serve on a non-loopback address or a share link without logins,
    unless `allow_anonymous` says it is meant."""
    if logins or allow_anonymous or (is_loopback(host) and not share):
        return
    where = "a public share link (--share)" if share else f"{host}, an address other machines can reach"
    raise AuthError(
        f"refusing to serve on {where} without a login: anyone who reaches it could use the app and see "
        "the uploaded images. Add --auth USER:PASSWORD (repeatable) or --auth-file FILE, or pass "
        "--allow-anonymous if an open server is what you want."
    )


def login_name(request: Any) -> Optional[str]:
    """The login name of a Gradio request (a gr.Request: declare a `request: gr.Request`
    parameter in an event function), or None when the server has no logins."""
    return getattr(request, "username", None) or None


LOGIN_CHECK = "/gradio_api/login_check"


def gradio_login_check(app: Any) -> Callable:
    """Gradio's own login check on `app` (its FastAPI app), as a dependency for the routes we
    add to it (decoder files, slide tiles): with logins they need one exactly as the page's
    own files do; without, everyone passes. Found as the endpoint of Gradio's login-check
    route (looking into included routers), else as the dependency Gradio's guarded routes
    carry. Should a Gradio version have neither, a check that refuses every request on a
    server with logins: our routes are never served unguarded."""
    found = _find_endpoint(app.routes, LOGIN_CHECK)
    if found is not None:
        return found
    for route in app.routes:
        for dependency in getattr(route, "dependencies", ()):
            if getattr(dependency.dependency, "__name__", "") == "login_check":
                return dependency.dependency

    def refuse_with_logins():
        from fastapi import HTTPException

        if getattr(app, "auth", None) is not None or getattr(app, "auth_dependency", None) is not None:
            raise HTTPException(401, "Not authenticated")

    return refuse_with_logins


def _find_endpoint(routes, path: str) -> Optional[Callable]:
    """The endpoint of the route at `path` among `routes`, looking into included routers
    (FastAPI may keep an included router whole, as an object holding its routes)."""
    for route in routes:
        if getattr(route, "path", None) == path and getattr(route, "endpoint", None) is not None:
            return route.endpoint
        inner = getattr(route, "original_router", None) or route
        found = _find_endpoint(inner.routes, path) if inner is not route or hasattr(route, "routes") else None
        if found is not None:
            return found
    return None


def _masked(text: str) -> str:
    user, colon, password = text.partition(":")
    return f"{user}{colon}{'*' * len(password)}" if colon else "*" * len(text)
