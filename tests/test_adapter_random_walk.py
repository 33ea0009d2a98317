"""Randomized consistency of time travel through the DAP adapter.

Long random walks of next / stepIn / stepOut / stepBack / continue / reverseContinue / jumpToEffect
and breakpoint changes over a handler with loops, nested calls and effects. Every time the walk
revisits a step index, the client must see the same line, locals and call stack as before.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from adapter_support import make_walk_demo, start_session

# Each test starts the debug adapter and a debuggee: not part of `make test-fast`.
pytestmark = pytest.mark.slow

COMMANDS = [
    "next",
    "next",
    "stepIn",
    "stepIn",
    "stepOut",
    "stepBack",
    "stepBack",
    "stepBack",
    "continue",
    "reverseContinue",
    "breakpoints",
    "jumpToEffect",
]
BACKWARD = ["stepBack", "reverseContinue", "jumpToEffect", "breakpoints"]


@pytest.fixture(scope="module")
def walk_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_walk_demo(tmp_path_factory.mktemp("walk") / "project", n=8)


def _snapshot(client) -> tuple:
    frames = client.frames()
    top = frames[0]
    scope = next(s for s in client.scopes(top["id"]) if s["name"].lower().startswith("locals"))
    return (
        top["line"],
        tuple(sorted(client.variables(scope["variablesReference"]).items())),
        tuple((f["name"], f["line"]) for f in frames),
    )


def _code_lines(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    return [
        i
        for i, text in enumerate(lines, 1)
        if text.strip()
        and not text.strip().startswith(("#", '"""', "@", "import", "from", "def", "class"))
    ]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_walk_revisits_show_identical_state(walk_demo, seed):
    """Every revisit of a step index shows the same line, locals and call stack, whatever path led there."""
    project, trace = walk_demo
    source = project / "walkdemo.py"
    candidates = _code_lines(source)
    rng = random.Random(seed)
    client = start_session(trace, project, stopOnEntry=True)
    seen: dict[int, tuple] = {}
    revisits = 0
    try:
        stop = client.stopped()
        for _ in range(160):
            step = stop["position"]["step"]
            state = _snapshot(client)
            if step in seen:
                revisits += 1
                assert state == seen[step], (
                    f"seed {seed}: step {step} looked different on a revisit"
                )
            else:
                seen[step] = state
            at_end = (stop.get("description") or "").startswith(("End of replay", "Uncaught"))
            command = rng.choice(BACKWARD if at_end else COMMANDS)
            if command == "breakpoints":
                lines = rng.sample(candidates, rng.randint(0, 3))
                client.set_breakpoints(str(source), lines)
                command = "reverseContinue" if at_end or rng.random() < 0.5 else "continue"
            if command == "jumpToEffect":
                client.request(
                    "prodture/jumpToEffect",
                    {"effect": rng.randint(1, stop["position"]["effectCount"])},
                )
                stop = client.stopped()
            else:
                stop = client.stopped(command)
        assert revisits >= 40, (
            f"seed {seed}: only {revisits} revisits; the walk did not exercise time travel"
        )
    finally:
        client.close()
