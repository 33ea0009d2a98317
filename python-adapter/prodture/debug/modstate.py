"""Module-level state of the user's modules, put back before every re-run.

Time travel re-runs the handler in the same process. A handler that mutates module globals
(a module-level cache, counter or list) would otherwise start each re-run with what the earlier
runs left there, and a revisited step would show other values than the first visit. Before the
first run the engine captures the globals of every project module (not the standard library,
not site-packages, not prodture); before each re-run it puts back:

- names rebound by the run (``global n; n += 1``) — the original object;
- names the run added (not modules: ``import pkg.sub`` binds ``sub`` legitimately) — removed;
- builtin containers (list, dict, set, bytearray, deque and dict subclasses) and instances of the
  project's own classes, mutated in place — their contents, from a deep copy taken at capture.

A container is restored only when its deep copy compares equal to it at capture time: one that
holds identity-compared objects (connections, clients) is left alone rather than replaced by
copies. Class attributes and state in library modules are not restored (the engine's call-depth
check still reports a re-run that lands elsewhere).
"""

from __future__ import annotations

import collections
import copy
import sys
import types
from typing import Any

from ..codefilter import UserCode

_MISSING = object()
_CONTAINERS = (list, dict, set, bytearray, collections.deque)


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


class ModuleState:
    def __init__(self, user_code: UserCode | None = None) -> None:
        # the project's modules: user code under the just-my-code rule whatever the launch said
        self._is_project_file = (user_code or UserCode()).is_project_file
        # module name -> (its globals dict, {name: (original object, deep copy of contents or None)})
        self._modules: dict[str, tuple[dict[str, Any], dict[str, tuple[Any, Any]]]] = {}
        self._project_modules: set[str] = set()

    def capture(self) -> None:
        """Remember the globals of every project module imported so far."""
        for name, module in list(sys.modules.items()):
            if (
                name in self._modules
                or name == "__main__"
                or not isinstance(module, types.ModuleType)
            ):
                continue  # __main__ is whatever drives the replay (the runner, a script), not the handler's
            path = getattr(module, "__file__", None)
            if not isinstance(path, str) or not self._is_project_file(path):
                continue
            self._project_modules.add(name)
            namespace = module.__dict__
            self._modules[name] = (namespace, {})
        for name in list(self._modules):
            namespace, saved = self._modules[name]
            if saved:
                continue
            for key, value in list(namespace.items()):
                if not _dunder(key):
                    saved[key] = (value, self._contents(value))
            if not saved:
                saved[""] = (None, None)  # captured, even if empty

    def _contents(self, value: Any) -> Any:
        """A deep copy of ``value``'s mutable contents, or None when it is not restorable in place."""
        if isinstance(value, _CONTAINERS):
            target: Any = value
        elif (
            not isinstance(
                value, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
            )
            and type(value).__module__ in self._project_modules
            and hasattr(value, "__dict__")
        ):
            target = vars(value)
        else:
            return None
        try:
            copied = copy.deepcopy(target)
            if not (copied == target):
                return None  # holds identity-compared objects: copies would not be the same state
        except Exception:
            return None
        return copied

    def restore(self) -> list[str]:
        """Put the captured state back; returns the names (``module.name``) that had changed."""
        changed: list[str] = []
        for module_name, (namespace, saved) in self._modules.items():
            for key in [
                k
                for k, v in namespace.items()
                if k not in saved and not _dunder(k) and not isinstance(v, types.ModuleType)
            ]:
                del namespace[key]
                changed.append(f"{module_name}.{key}")
            for key, (original, contents) in saved.items():
                if not key:
                    continue
                if namespace.get(key, _MISSING) is not original:
                    namespace[key] = original
                    changed.append(f"{module_name}.{key}")
                if contents is None:
                    continue
                target = vars(original) if not isinstance(original, _CONTAINERS) else original
                try:
                    if target == contents:
                        continue
                except Exception:
                    pass
                fresh = copy.deepcopy(contents)
                if isinstance(target, (list, bytearray)):
                    target[:] = fresh
                elif isinstance(target, collections.deque):
                    target.clear()
                    target.extend(fresh)
                else:  # dict, set, an instance's __dict__
                    target.clear()
                    target.update(fresh)
                changed.append(f"{module_name}.{key}")
        return changed
