"""Where a store is, and how to name it without its password.

Every command that reads or writes a store (the trace store, the event store) takes the store's
location the same way, first found wins:

1. the command line (``--store URL``);
2. the ``PRODTURE_STORE`` environment variable;
3. ``store`` in ``[tool.prodture]`` of the nearest ``pyproject.toml`` at or above the working
   folder (a relative path there is relative to that ``pyproject.toml``).

A location is a URL (``postgresql://user:password@host:port/db``, ``sqlite:///path/events.db``) or
a plain path (a directory of ``.prodtrace`` files, an SQLite file). Anything shown to a user goes
through :func:`mask_password` first: a password is never printed.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

ENV_VAR = "PRODTURE_STORE"


class StoreConfigError(ValueError):
    """The store's location is missing or cannot be read; the message names the fix."""


def mask_password(url: str) -> str:
    """``url`` with any password replaced by ``***`` (also in ``password=`` query/DSN parts)."""
    text = re.sub(r"(?i)(password\s*=\s*)('[^']*'|[^\s&;]+)", r"\1***", url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.password is None:
        return text
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _anchor(location: str, base_dir: str) -> str:
    """A relative plain path or ``sqlite:///relative`` made absolute against ``base_dir``."""
    if location.startswith("sqlite:///") and not location.startswith("sqlite:////"):
        rest = location[len("sqlite:///") :]
        return "sqlite:///" + os.path.normpath(os.path.join(base_dir, rest))
    if "://" not in location and not os.path.isabs(location):
        return os.path.normpath(os.path.join(base_dir, location))
    return location


def resolve_store(explicit: str | None = None, cwd: str | None = None) -> str:
    """The store location from the command line, ``PRODTURE_STORE`` or ``[tool.prodture] store``.

    Raises :class:`StoreConfigError` naming the three ways to set it when none is set.
    """
    base = os.path.abspath(cwd or os.getcwd())
    if explicit:
        return _anchor(explicit, base)
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return _anchor(from_env, base)
    from .replay import ReplayError, project_config  # read once per process, shared with replay

    try:
        config = project_config(base)
    except ReplayError as e:
        raise StoreConfigError(str(e)) from None
    if config.store is not None and not isinstance(config.store, str):
        raise StoreConfigError(
            f"{config.pyproject}: [tool.prodture] store must be a string (a URL or a path)"
        )
    if config.store and config.pyproject:
        return _anchor(config.store, os.path.dirname(config.pyproject))
    raise StoreConfigError(
        'no store given: pass --store URL, set PRODTURE_STORE, or set store = "..." '
        "in [tool.prodture] of pyproject.toml"
    )
