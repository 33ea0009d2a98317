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
        lines[-1]
        == "outcome  Failure at effect #3: PaymentDeclined: amount must be greater than zero"
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
    version, durations) replaced by placeholders."""
    text = re.sub(r"traces/\S+\.prodtrace", "traces/NAME.prodtrace", text)
    text = re.sub(
        r"\(id [0-9a-f]{12}, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, Python [\w.+]+\)",
        "(id ID, TIME, Python VERSION)",
        text,
    )
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
