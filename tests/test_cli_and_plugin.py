"""The CLI contract (exit codes, one-line errors, --json) and the pytest replay plugin."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PRODTURE = [sys.executable, "-m", "prodture.cli"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PRODTURE, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_show_prints_each_effect_and_the_failure(checkout_dir: Path, checkout_traces: dict) -> None:
    """`prodture show` lists every effect with its result or error and the outcome, exit 0."""
    done = run_cli("show", str(checkout_traces["failing"]), cwd=checkout_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    effect_lines = [line for line in lines if line.lstrip(" !").startswith("#")]
    assert [line.split()[1].split("(")[0] for line in effect_lines] == [
        "LoadCart",
        "ApplyPromo",
        "ChargeCard",
        "SaveOrder",
    ]
    charge = effect_lines[2]
    assert (
        "amount=Decimal('0.00')" in charge
        and "✗ PaymentDeclined: amount must be greater than zero" in charge
    )
    assert (
        lines[-2]
        == "outcome  Failure at effect #3: PaymentDeclined: amount must be greater than zero"
    )
    assert lines[-1].startswith("raised   ") and lines[-1].endswith(
        "service.py:18 in place_order: "
        'charge = yield ChargeCard(card_token=request["card_token"], amount=total)'
    )


@pytest.mark.parametrize("args", [["show"], ["show", "--json"], ["replay"]])
def test_a_reader_that_stops_reading_is_a_normal_end(
    args: list[str], checkout_dir: Path, checkout_traces: dict
) -> None:
    """`prodture show TRACE | head -2`: the reader closing the pipe ends the command quietly
    (no "internal error", no traceback) with the command's own exit code."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is already gone: every write to the pipe fails (EPIPE)
    try:
        done = subprocess.run(
            [*PRODTURE, *args, str(checkout_traces["ok"])],
            cwd=checkout_dir,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_show_json_is_machine_readable(checkout_dir: Path, checkout_traces: dict) -> None:
    """`prodture show --json` gives the decoded trace with tagged non-JSON values."""
    done = run_cli("show", "--json", str(checkout_traces["failing"]), cwd=checkout_dir)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["header"]["handler"] == "checkout.service:place_order"
    charge = data["effects"][2]
    assert charge["type"] == "checkout.ChargeCard" and charge["request"]["amount"] == {
        "$decimal": "0.00"
    }
    assert charge["error"]["$error"] == "checkout.PaymentDeclined"
    assert data["outcome"]["failed_effect"] == 3 and data["complete"] is True


def test_replay_reproduces_without_database_or_gateway(
    checkout_dir: Path, checkout_traces: dict
) -> None:
    """Every recorded order replays with exit 0 although the database is deleted and the gateway stopped."""
    assert not (checkout_dir / "var" / "shop.db").exists()
    for trace in checkout_traces["all"]:
        done = run_cli("replay", str(trace), cwd=checkout_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("reproduced: checkout.service:place_order")


def _diverging_copy(checkout_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "checkout"
    shutil.copytree(checkout_dir, copy, ignore=shutil.ignore_patterns("traces", "__pycache__"))
    service = copy / "checkout" / "service.py"
    source = service.read_text()
    edited = source.replace(
        'charge = yield ChargeCard(card_token=request["card_token"], amount=total)',
        'charge = yield ChargeCard(card_token=request["card_token"], amount=max(total, subtotal))',
    )
    assert edited != source
    service.write_text(edited)
    return copy


def test_replay_reports_the_first_divergence_with_exit_1(
    checkout_dir: Path, checkout_traces: dict, tmp_path: Path
) -> None:
    """After the handler changes, replay exits 1 naming the effect and the recorded-vs-now field."""
    copy = _diverging_copy(checkout_dir, tmp_path)
    done = run_cli("replay", str(checkout_traces["failing"]), cwd=copy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == (
        "DIVERGED: effect #3 ChargeCard: request differs — amount: recorded Decimal('0.00'), now Decimal('15.00')"
    )
    assert "service.py:18 in place_order" in done.stdout
    as_json = json.loads(
        run_cli("replay", "--json", str(checkout_traces["failing"]), cwd=copy).stdout
    )
    assert as_json["reproduced"] is False and as_json["divergence"]["effect"] == 3
    assert as_json["divergence"]["differences"] == [
        {"field": "amount", "recorded": {"$decimal": "0.00"}, "now": {"$decimal": "15.00"}}
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["replay", "missing.prodtrace"],
            "prodture: missing.prodtrace: no such trace file; check the path",
        ),
        (["show", "pyproject.toml"], "prodture: pyproject.toml: not a prodture trace"),
        (["replay"], "prodture: the following arguments are required: trace"),
        (["frobnicate"], "prodture: argument COMMAND: invalid choice"),
    ],
)
def test_bad_input_is_one_line_with_exit_2(
    checkout_dir: Path, args: list[str], message: str
) -> None:
    """Bad input gives exactly one stderr line starting `prodture: `, exit 2, no traceback."""
    done = run_cli(*args, cwd=checkout_dir)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr


def test_replay_refuses_a_handler_that_no_longer_imports(
    checkout_dir: Path, checkout_traces: dict, tmp_path: Path
) -> None:
    """A handler module with a syntax error is named with file and line, exit 2."""
    copy = _diverging_copy(checkout_dir, tmp_path)
    (copy / "checkout" / "service.py").write_text("def place_order(:\n")
    done = run_cli("replay", str(checkout_traces["failing"]), cwd=copy)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "prodture: handler module 'checkout.service' no longer imports: SyntaxError at "
    )
    assert len(done.stderr.splitlines()) == 1


def test_pytest_plugin_turns_traces_into_regression_tests(
    pytester: pytest.Pytester, checkout_dir: Path, checkout_traces: dict, tmp_path: Path
) -> None:
    """`pytest --prodture-replay` passes on reproduced traces and fails with the divergence after an edit."""
    project = _diverging_copy(checkout_dir, tmp_path)
    traces = project / "traces"
    traces.mkdir()
    shutil.copy(checkout_traces["failing"], traces / "failing.prodtrace")
    shutil.copy(checkout_traces["ok"], traces / "ok.prodtrace")
    pytester.chdir()
    # pytest-lsp (a test dependency here) breaks on non-function test items: keep it out.
    result = pytester.runpytest_subprocess(
        "--prodture-replay",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:pytest-lsp",
        "--rootdir",
        str(project),
        str(traces),
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*failing.prodtrace: effect #3 ChargeCard: request differs*"])


def _readme_comparable(text: str) -> str:
    """A show/replay transcript with what differs between runs (file name, id, time, Python
    version, durations, the folder the example was recorded in) replaced by placeholders."""
    text = re.sub(r"traces/\S+\.prodtrace", "traces/NAME.prodtrace", text)
    text = re.sub(
        r"\(id [0-9a-f]{12}, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, Python [\w.+]+\)",
        "(id ID, TIME, Python VERSION)",
        text,
    )
    text = re.sub(r"^raised   \S*/(checkout/service\.py:)", r"raised   .../\1", text, flags=re.M)
    return re.sub(r"\d+\.\d ms", "N ms", text)


def test_the_readme_transcript_is_what_the_demo_prints(checkout_dir: Path, checkout_traces: dict):
    """README's `prodture show` + `prodture replay` of the failing order is a real run's output:
    the same lines as running them now, apart from the file name, id, time and durations."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    [block] = re.findall(r"```\n(trace    .*?)```", readme, re.S)
    trace = f"traces/{checkout_traces['failing'].name}"
    show = run_cli("show", trace, cwd=checkout_dir)
    replay = run_cli("replay", trace, cwd=checkout_dir)
    assert (show.returncode, replay.returncode) == (0, 0), show.stderr + replay.stderr
    assert _readme_comparable(block) == _readme_comparable(f"{show.stdout}\n{replay.stdout}")


STUBS = """
from checkout.model import Charge


def stubs():
    return {
        "checkout.ChargeCard": lambda e: Charge("ch_stub", e.amount),
        "checkout.SaveOrder": lambda e: "order-stub",
    }
"""


def test_show_full_and_effect_n_print_whole_values_and_the_raising_line(
    checkout_dir: Path, checkout_traces: dict
) -> None:
    """`show` clips; `--full` and `--effect N` print whole values; a failure names its line."""
    short = run_cli("show", str(checkout_traces["failing"]), cwd=checkout_dir).stdout
    assert "…" in short  # the cart result is clipped in the summary
    assert (
        "raised   " in short and "service.py:18 in place_order: charge = yield ChargeCard(" in short
    )
    full = run_cli("show", "--full", str(checkout_traces["failing"]), cwd=checkout_dir)
    assert full.returncode == 0 and "linus@example.com" in full.stdout
    assert "CartLine(" in full.stdout and "…" not in full.stdout.split("effects")[1]
    one = run_cli("show", "--effect", "1", str(checkout_traces["failing"]), cwd=checkout_dir)
    assert one.stdout.startswith("effect   #1 checkout.LoadCart") and "CartLine(" in one.stdout
    missing = run_cli("show", "--effect", "9", str(checkout_traces["failing"]), cwd=checkout_dir)
    assert missing.returncode == 2 and "has no effect #9: it has #1 to #4" in missing.stderr


def test_handlers_own_exception_shows_its_line(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "app.py").write_text(
        "import prodture\n\n\n@prodture.handler\ndef h(x):\n    now = yield prodture.Now()\n"
        "    return 1 // x  # the bug\n"
    )
    (project / "pyproject.toml").write_text('[tool.prodture]\nmodules = ["app"]\n')
    record = (
        "import sys; sys.path.insert(0, '.'); import prodture, app\n"
        "prodture.Interpreter(recorder=prodture.Recorder(prodture.DirectorySink('t'))).run(app.h, 0)\n"
    )
    subprocess.run([sys.executable, "-c", record], cwd=project, check=True)
    [trace] = (project / "t").glob("*.prodtrace")
    done = run_cli("show", str(trace), cwd=project)
    assert "app.py:7 in h: return 1 // x  # the bug" in done.stdout, done.stdout
    # speculative replay answers Now deterministically when the code asks for a new one
    (project / "app.py").write_text(
        "import prodture\n\n\n@prodture.handler\ndef h(x):\n    yield prodture.RandomInt(1, 6)\n"
        "    now = yield prodture.Now()\n    return str(now.year)\n"
    )
    fixed = run_cli("replay", "--expect-fixed", str(trace), cwd=project)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert fixed.stdout.startswith("FIXED: app:h: fixed: the recorded ZeroDivisionError")


def test_replay_expect_fixed_with_stubs(
    checkout_dir: Path, checkout_traces: dict, tmp_path: Path
) -> None:
    """A bug's trace: not fixed (exit 1) on the old code; after the fix, speculative replay with
    --stubs shows the new outcome and exits 0; without stubs it says it cannot tell."""
    not_fixed = run_cli(
        "replay", "--expect-fixed", str(checkout_traces["failing"]), cwd=checkout_dir
    )
    assert not_fixed.returncode == 1
    assert not_fixed.stdout.startswith("NOT FIXED: checkout.service:place_order: not fixed")
    copy = _diverging_copy(checkout_dir, tmp_path)
    (copy / "fix_stubs.py").write_text(STUBS)
    cannot = run_cli("replay", "--expect-fixed", str(checkout_traces["failing"]), cwd=copy)
    assert cannot.returncode == 1 and "cannot tell" in cannot.stdout and "no stub" in cannot.stdout
    fixed = run_cli(
        "replay",
        "--expect-fixed",
        "--stubs",
        "fix_stubs:stubs",
        str(checkout_traces["failing"]),
        cwd=copy,
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "FIXED" in fixed.stdout and "'charge_id': 'ch_stub'" in fixed.stdout
    assert "would perform #3 ChargeCard" in fixed.stdout
    bad = run_cli("replay", "--stubs", "nope", str(checkout_traces["failing"]), cwd=copy)
    assert bad.returncode == 2 and "not of the form module:name" in bad.stderr


def test_plugin_expect_fixed_and_finds_the_trace_project(
    pytester: pytest.Pytester, checkout_dir: Path, checkout_traces: dict, tmp_path: Path
) -> None:
    """Run from another folder: each trace is replayed in its own project; a *.expect-fixed trace
    passes once the bug is fixed; a trace outside any project says exactly why it cannot run."""
    project = _diverging_copy(checkout_dir, tmp_path)
    traces = project / "traces"
    traces.mkdir()
    shutil.copy(checkout_traces["failing"], traces / "bug-17.expect-fixed.prodtrace")
    orphan = tmp_path / "elsewhere"
    orphan.mkdir()
    shutil.copy(checkout_traces["ok"], orphan / "ok.prodtrace")
    elsewhere = tmp_path / "run-from-here"
    elsewhere.mkdir()
    (project / "fix_stubs.py").write_text(STUBS)

    def run(*extra: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "--prodture-replay",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:pytest-lsp",
            "--rootdir",
            str(elsewhere),
            *extra,
            str(traces),
            str(orphan),
        )

    pytester.chdir()
    result = run()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*bug-17.expect-fixed.prodtrace: expected fixed, cannot tell whether it is fixed*",
            "*ok.prodtrace: cannot replay: no pyproject.toml with a ?tool.prodture? table at or above*",
        ]
    )
    fixed = run("--prodture-stubs", "fix_stubs:stubs", "-rP")
    fixed.assert_outcomes(passed=1, failed=1)
    fixed.stdout.fnmatch_lines(
        ["*fixed: the recorded PaymentDeclined*no longer happens; now Success*"]
    )
