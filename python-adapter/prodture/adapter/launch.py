"""Launch validation: the launch attributes checked before a debuggee is started, the runner's
command line, and the one-line explanation of a debuggee that died before the session started."""

from __future__ import annotations

import os
import sys
from typing import Any

LAUNCH_TIMEOUT = 30.0


class LaunchError(Exception):
    """The debuggee cannot be started; the message is the one line the user sees."""


def check_launch(args: dict[str, Any]) -> str | None:
    """The first problem of the launch attributes ``args`` as one line naming the fix, or None.
    Makes ``trace`` and ``cwd`` absolute in place."""
    trace = args.get("trace")
    if not trace or not isinstance(trace, str):
        return 'the launch configuration has no "trace": set it to the path of a .prodtrace file'
    cwd = args.get("cwd") or os.getcwd()
    if not os.path.isdir(cwd):
        return f'cwd {cwd} is not a directory; fix the "cwd" launch attribute'
    path = trace if os.path.isabs(trace) else os.path.join(cwd, trace)
    if not os.path.exists(path):
        return f'{trace}: no such trace file; check the "trace" launch attribute'
    args["trace"] = os.path.abspath(path)
    args["cwd"] = os.path.abspath(cwd)
    mode = args.get("replayMode") or "strict"
    if mode not in ("strict", "speculative"):
        return f"replayMode {mode!r} is not strict or speculative; fix the launch attribute"
    handler = args.get("handler")
    if handler and (not isinstance(handler, str) or ":" not in handler):
        return f'handler {handler!r} is not of the form module:function; fix the "handler" launch attribute'
    stubs = args.get("stubs")
    if stubs and (not isinstance(stubs, str) or ":" not in stubs):
        return (
            f'stubs {stubs!r} is not of the form module:function; fix the "stubs" launch attribute'
        )
    if stubs and mode != "speculative":
        return '"stubs" answer new effects only in a speculative replay; add "replayMode": "speculative" or remove "stubs"'
    return None


def is_strict(args: dict[str, Any]) -> bool:
    return (args.get("replayMode") or "strict") == "strict"


def runner_command(args: dict[str, Any], control_fd: int) -> list[str]:
    """``python -m prodture.debug.runner …`` for checked launch attributes ``args``."""
    command = [
        args.get("python") or sys.executable,
        "-X",
        "frozen_modules=off",
        "-m",
        "prodture.debug.runner",
        "--control-fd",
        str(control_fd),
        "--trace",
        args["trace"],
        "--handler",
        args.get("handler") or "",
        "--cwd",
        args.get("cwd") or os.getcwd(),
        "--mode",
        args.get("replayMode") or "strict",
        "--just-my-code",
        "0" if args.get("justMyCode") is False else "1",
        "--stop-on-entry",
        "1" if args.get("stopOnEntry") else "0",
    ]
    if args.get("stubs"):
        command += ["--stubs", args["stubs"]]
    return command


def explain_exit(python: str, stderr_tail: list[str], code: int | None) -> str:
    """Why a debuggee exited before the session started, in one line."""
    tail = "".join(stderr_tail)
    for line in reversed(stderr_tail):
        if line.startswith("prodture: "):
            return line[len("prodture: ") :].strip()
    if "No module named prodture" in tail or "No module named 'prodture" in tail:
        return (
            f"prodture is not installed in {python}; run: {python} -m pip install 'prodture[debug]'"
        )
    last = tail.strip().splitlines()[-1] if tail.strip() else ""
    return f"the debuggee ({python}) exited with code {code} before the session started" + (
        f": {last}" if last else ""
    )
