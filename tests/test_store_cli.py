"""prodture list / fetch / import / prune against a directory and a PostgreSQL store."""

from __future__ import annotations

import datetime as _dt
import json

import pytest

import prodture
from prodture.cli import main
from prodture.stores import open_store
from store_support import IDS, NOW, fill, make_trace


@pytest.fixture
def trace_dir(tmp_path):
    store = open_store(str(tmp_path / "traces"), create=True)
    fill(store)
    return str(tmp_path / "traces")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_reads_the_store_from_the_environment(trace_dir, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PRODTURE_STORE", trace_dir)
    code, out, err = _run(capsys, "list", "--failed", "--since", "1h")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STARTED", "(UTC)"]
    assert len(lines) == 2 and lines[1].startswith(IDS["new_fail"][:12])
    assert "FAILED at #2: PaymentDeclined: insufficient funds" in lines[1]
    code, out, _ = _run(
        capsys, "list", "--json", "--otel-trace-id", "0af7651916cd43dd8448eb211c80319c"
    )
    rows = json.loads(out)
    assert [r["trace_id"] for r in rows] == [IDS["new_fail"]]
    assert rows[0]["ok"] is False and rows[0]["failed_effect"] == 2
    code, out, err = _run(capsys, "list", "--since", "yesterday")
    assert code == 2 and "--since 'yesterday': use an age" in err and len(err.splitlines()) == 1


def test_store_from_pyproject(trace_dir, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("PRODTURE_STORE", raising=False)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text(f'[tool.prodture]\nstore = "{trace_dir}"\n')
    monkeypatch.chdir(project / "src")
    code, out, _ = _run(capsys, "list", "--handler", "refund", "--json")
    assert code == 0 and [r["trace_id"] for r in json.loads(out)] == [IDS["other"]]


def test_fetch_by_prefix_ambiguous_and_unknown(trace_dir, tmp_path, capsys) -> None:
    out_dir = tmp_path / "fetched"
    out_dir.mkdir()
    code, out, err = _run(capsys, "fetch", "abc", "--store", trace_dir, "-o", str(out_dir))
    assert code == 0, err
    written = out.strip()
    assert written == str(out_dir / f"{IDS['new_fail']}.prodtrace")
    assert prodture.read_trace(written).header.trace_id == IDS["new_fail"]
    code, out, err = _run(capsys, "fetch", "ab", "--store", trace_dir)
    lines = err.splitlines()
    assert code == 2 and lines[0] == (
        "prodture: trace id prefix 'ab' matches 3 traces; give more characters:"
    )
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(
        i[:12] for i in (IDS["old_fail"], IDS["new_fail"], IDS["new_ok"])
    )
    code, out, err = _run(capsys, "fetch", "deadbeef", "--store", trace_dir)
    assert code == 2 and err.startswith("prodture: no trace with id 'deadbeef' in ")
    assert len(err.splitlines()) == 1


def test_import_then_list_and_prune_in_postgres(trace_dir, postgres_url, capsys) -> None:
    code, out, err = _run(capsys, "import", trace_dir, "--store", postgres_url)
    assert code == 0, err
    assert out.startswith("imported 5 traces into postgresql://prodture:***@")
    assert "s3cret" not in out + err
    code, out, _ = _run(capsys, "list", "--store", postgres_url, "--failed", "--json")
    assert [r["trace_id"] for r in json.loads(out)] == [IDS["new_fail"], IDS["old_fail"]]
    code, out, _ = _run(capsys, "prune", "--store", postgres_url, "--older-than", "7d")
    assert code == 0 and out.startswith(
        "pruned 2 traces older than 7d from postgresql://prodture:***@"
    )
    code, out, _ = _run(capsys, "list", "--store", postgres_url, "--json")
    assert len(json.loads(out)) == 3
    code, out, _ = _run(capsys, "prune", "--store", trace_dir, "--older-than", "1d")
    assert out.startswith("pruned 2 traces")


def test_unreachable_or_missing_store_is_one_line(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("PRODTURE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "list", "--store", "postgresql://u:topsecret@127.0.0.1:1/db")
    assert code == 2 and len(err.splitlines()) == 1 and "topsecret" not in err
    assert err.startswith(
        "prodture: cannot reach the trace store postgresql://u:***@127.0.0.1:1/db"
    )
    code, _, err = _run(capsys, "list")
    assert code == 2 and "no store given: pass --store URL, set PRODTURE_STORE" in err
    code, _, err = _run(capsys, "prune", "--store", str(tmp_path), "--older-than", "soon")
    assert code == 2 and "is not an age" in err


def test_a_recorded_directory_is_a_store(tmp_path, capsys) -> None:
    """What DirectorySink writes is listed and fetched with no import step."""
    directory = tmp_path / "live"
    stamp = NOW - _dt.timedelta(seconds=1)
    sink = prodture.DirectorySink(directory)
    from prodture.recorder import TraceInfo

    stream = sink.open(TraceInfo("tests.store:checkout", "c" * 32, stamp))
    stream.write(make_trace("c" * 32, ok=False, started=stamp))
    stream.close()
    code, out, _ = _run(capsys, "list", "--store", str(directory), "--failed")
    assert code == 0 and out.splitlines()[1].startswith("c" * 12)
