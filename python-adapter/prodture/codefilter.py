"""Whose code is it: prodture's, a library's, or the user's project. One answer for the runtime
(which frame a non-effect came from), the step engine (which frames are stepped through) and the
module state the engine puts back before a re-run (which modules are the project's).

Standard library only: the production runtime imports it.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from collections.abc import Iterable

__all__ = ["PACKAGE_DIR", "is_runtime_file", "is_library_file", "UserCode"]

#: Frames of files under this directory are prodture's, not the user's: tracebacks and
#: debuggers hide them.
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_SITE_PACKAGES = os.sep + "site-packages" + os.sep


def is_runtime_file(filename: str) -> bool:
    return filename.startswith(PACKAGE_DIR)


@functools.lru_cache(maxsize=1)
def library_roots() -> tuple[str, ...]:
    """The standard library's and the installed packages' directories (real paths)."""
    roots = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if key in paths:
            roots.add(os.path.realpath(paths[key]) + os.sep)
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        roots.add(os.path.realpath(os.path.join(prefix, "lib")) + os.sep)
    return tuple(sorted(roots))


def is_library_file(filename: str) -> bool:
    """A file of the standard library or of an installed package."""
    real = os.path.realpath(filename)
    return real.startswith(library_roots()) or _SITE_PACKAGES in real


class UserCode:
    """The user-code rule of one debug session. ``just_my_code`` off: library code is stepped
    through too; ``hidden_files`` (the stubs' files) never are."""

    def __init__(self, just_my_code: bool = True, hidden_files: Iterable[str] = ()) -> None:
        self.just_my_code = just_my_code
        self.hidden_files = frozenset(os.path.realpath(f) for f in hidden_files)

    @staticmethod
    def _tooling(filename: str) -> str | None:
        """The real path of ``filename``, or None when it is prodture's, debugpy's or not a file."""
        if filename.startswith("<") or is_runtime_file(filename):
            return None
        real = os.path.realpath(filename)
        if is_runtime_file(real) or "debugpy" in real.split(os.sep):
            return None
        return real

    def is_user_code(self, filename: str) -> bool:
        real = self._tooling(filename)
        if real is None or real in self.hidden_files:
            return False
        return not (self.just_my_code and is_library_file(real))

    def is_project_file(self, filename: str) -> bool:
        """User code under the just-my-code rule whatever the launch said: the modules whose
        module-level state re-runs put back."""
        real = self._tooling(filename)
        return real is not None and not is_library_file(real)
