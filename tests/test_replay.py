"""Replay: effects answered from the trace, and precise divergence reports when the code changed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

import prodture
from prodture import Effect, Interpreter, MemorySink, Recorder, Replayer, read_trace
from prodture.replay import (
    SPECULATIVE,
    ProjectConfig,
    ReplayError,
    _tool_prodture,
    find_project,
    project_config,
)
from prodture.trace import REDACTED


@dataclasses.dataclass(frozen=True)
class GetPrice(Effect, name="test_replay.GetPrice"):
    sku: str


@dataclasses.dataclass(frozen=True)
class Pay(Effect, name="test_replay.Pay"):
    amount: Decimal
    token: str = ""


@dataclasses.dataclass(frozen=True)
class MarkFree(Effect, name="test_replay.MarkFree"):
    sku: str


@prodture.register(name="test_replay.Declined")
class Declined(Exception):
    pass


def pay(effect: Pay) -> str:
    if effect.amount <= 0:
        raise Declined("amount must be greater than zero")
    return "ch_1"


PERFORMERS: dict[type, Callable[[Any], Any]] = {
    GetPrice: lambda e: Decimal("0.00") if e.sku == "free" else Decimal("5.00"),
    Pay: pay,
}


def buy(sku):
    price = yield GetPrice(sku)
    receipt = yield Pay(price, token="tok_secret")
    return {"sku": sku, "receipt": receipt}


def record(handler, input):
    sink = MemorySink()
    outcome = Interpreter(PERFORMERS, recorder=Recorder(sink)).run(handler, input)
    return read_trace(sink.traces[0]), outcome


def test_unchanged_code_reproduces_success_and_failure():
    """Replaying the same code reproduces the recorded outcome exactly, without performing anything."""
    for sku in ("book", "free"):
        trace, outcome = record(buy, sku)
        result = Replayer(trace, buy).run()
        assert result.reproduced and result.divergence is None and result.effects_replayed == 2
        assert result.outcome.ok == outcome.ok
    assert isinstance(result.outcome.error, Declined) and result.outcome.effect_seq == 2


def test_recorded_error_is_raised_at_the_yield_in_replay():
    """A recorded effect error is raised at the same yield during replay, so the handler's except runs again."""

    def tolerant(sku):
        price = yield GetPrice(sku)
        try:
            yield Pay(price)
        except Declined as error:
            return f"declined: {error}"
        return "paid"

    trace, outcome = record(tolerant, "free")
    assert outcome.value == "declined: amount must be greater than zero"
    result = Replayer(trace, tolerant).run()
    assert result.reproduced and result.outcome.value == outcome.value


def test_type_divergence_names_both_effects():
    """Yielding another effect type than recorded is a 'type' divergence naming the recorded request and the new effect."""
    trace, _ = record(buy, "free")

    def fixed(sku):
        price = yield GetPrice(sku)
        if price == 0:
            yield MarkFree(sku)
            return {"sku": sku, "receipt": None}
        return (yield Pay(price))

    result = Replayer(trace, fixed).run()
    d = result.divergence
    assert d.kind == "type" and d.effect_seq == 2 and result.outcome is None
    assert d.message == (
        "effect #2: recorded Pay(amount=Decimal('0.00'), token=<redacted>), code now yields MarkFree(sku='free')"
    )
    assert d.recorded is trace.effects[1] and d.now == MarkFree("free") and d.site[2] == "fixed"


def test_request_divergence_lists_changed_fields_and_ignores_redacted_ones():
    """Same effect with other field values is a 'request' divergence listing each changed field; redacted fields match anything."""
    trace, _ = record(buy, "book")
    assert trace.effects[1].request["token"] is REDACTED

    def doubled(sku):
        price = yield GetPrice(sku)
        receipt = yield Pay(price * 2, token="another-token")
        return {"sku": sku, "receipt": receipt}

    d = Replayer(trace, doubled).run().divergence
    assert d.kind == "request" and d.effect_seq == 2
    assert [(f.field, f.recorded, f.now) for f in d.differences] == [
        ("amount", Decimal("5.00"), Decimal("10.00"))
    ]
    assert (
        d.message
        == "effect #2 Pay: request differs — amount: recorded Decimal('5.00'), now Decimal('10.00')"
    )


def test_extra_effect_divergence():
    """An effect beyond the recording's last one is an 'extra' divergence."""
    trace, _ = record(buy, "book")

    def more(sku):
        yield from buy(sku)
        yield GetPrice("again")

    d = Replayer(trace, more).run().divergence
    assert d.kind == "extra" and d.effect_seq == 3
    assert (
        d.message
        == "effect #3: code now yields GetPrice(sku='again'), but the recording has only 2 effects"
    )


def test_missing_effect_divergence():
    """Code that finishes before the recorded effects end is a 'missing' divergence naming the next recorded effect."""
    trace, _ = record(buy, "book")

    def fewer(sku):
        yield GetPrice(sku)
        return "early"

    result = Replayer(trace, fewer).run()
    d = result.divergence
    assert d.kind == "missing" and d.effect_seq == 2 and result.outcome.value == "early"
    assert (
        d.message.startswith("effect #2: recorded Pay(amount=Decimal('5.00')")
        and "finishes after 1 effect (" in d.message
    )


def test_outcome_divergence():
    """Same effects but another result is an 'outcome' divergence showing both."""
    trace, _ = record(buy, "book")

    def other_result(sku):
        yield GetPrice(sku)
        yield Pay(Decimal("5.00"))
        return "different"

    d = Replayer(trace, other_result).run().divergence
    assert d.kind == "outcome" and d.effect_seq is None
    assert (
        d.message
        == "outcome: recorded Success: {'sku': 'book', 'receipt': 'ch_1'}, now Success: 'different'"
    )


def test_divergence_is_not_swallowed_by_a_broad_except():
    """A strict-mode divergence stops the replay even inside a handler's `except Exception`."""
    trace, _ = record(buy, "book")

    def swallowing(sku):
        try:
            yield MarkFree(sku)
        except Exception:
            return "swallowed"

    result = Replayer(trace, swallowing).run()
    assert result.divergence.kind == "type" and result.outcome is None


def test_speculative_replay_answers_new_effects_with_stubs():
    """In speculative mode the run continues past a divergence: new effects are answered by the user's stubs."""
    trace, _ = record(buy, "free")

    def fixed(sku):
        price = yield GetPrice(sku)
        if price == 0:
            marked = yield MarkFree(sku)
            return {"sku": sku, "free": marked}
        return (yield Pay(price))

    result = Replayer(
        trace, fixed, mode=SPECULATIVE, stubs={MarkFree: lambda e: f"marked {e.sku}"}
    ).run()
    assert result.divergence.kind == "type" and result.mode == SPECULATIVE
    assert result.outcome.value == {"sku": "free", "free": "marked free"}
    assert result.speculative_effects == [(2, MarkFree("free"), "marked free")]
    assert not result.reproduced


def test_speculative_replay_without_a_stub_says_which_to_pass():
    """A new effect with no stub stops a speculative replay with a 'no-stub' divergence naming the stub to pass."""
    trace, _ = record(buy, "free")

    def fixed(sku):
        yield GetPrice(sku)
        yield MarkFree(sku)

    d = Replayer(trace, fixed, mode=SPECULATIVE).run().divergence
    assert d.kind == "no-stub" and "pass stubs={MarkFree: ...}" in d.message


def test_incomplete_trace_reports_end_of_trace():
    """Replaying a prefix left by a killed writer stops with an 'end-of-trace' divergence at the first unrecorded effect."""
    sink = MemorySink()
    Interpreter(PERFORMERS, recorder=Recorder(sink)).run(buy, "book")
    data = sink.traces[0]
    from prodture.trace import TraceReader

    ends = [end for _, end in TraceReader(data).raw_records()]
    prefix = read_trace(data[: ends[-2] - 1])  # the second effect record cut short
    assert len(prefix.effects) == 1 and not prefix.complete
    d = Replayer(prefix, buy).run().divergence
    assert d.kind == "end-of-trace" and d.effect_seq == 2 and "recording is incomplete" in d.message


def test_checkout_zero_charge_reproduces_and_the_fix_diverges(checkout_dir, checkout_traces):
    """The recorded $0 charge replays to the same PaymentDeclined; a fixed handler reports the precise divergence at effect #3."""
    replayer = Replayer.from_file(checkout_traces["failing"], cwd=str(checkout_dir))
    result = replayer.run()
    assert result.reproduced and result.effects_replayed == 4
    assert (
        type(result.outcome.error).__name__ == "PaymentDeclined" and result.outcome.effect_seq == 3
    )

    from checkout.effects import (
        ApplyPromo,
        ChargeCard,
        LoadCart,
        SaveOrder,
    )  # imported by the replayer above

    def place_order_fixed(request):
        cart = yield LoadCart(request["cart_id"])
        total = yield ApplyPromo(code=request.get("promo"), subtotal=cart.subtotal())
        if total == 0:
            return (yield SaveOrder(cart.cart_id, total, status="free"))
        return (yield ChargeCard(card_token=request["card_token"], amount=total))

    d = Replayer(replayer.trace, place_order_fixed).run().divergence
    assert d.kind == "type" and d.effect_seq == 3
    assert d.message.startswith(
        "effect #3: recorded ChargeCard(card_token=<redacted>, amount=Decimal('0.00')), code now yields SaveOrder("
    )


def test_unknown_replay_mode_is_refused():
    """An unknown replay mode raises ReplayError naming the valid modes."""
    trace, _ = record(buy, "book")
    with pytest.raises(ReplayError, match="use 'strict' or 'speculative'"):
        Replayer(trace, buy, mode="loose").run()


def test_a_script_outside_the_project_is_told_which_folder_to_pass(
    checkout_dir, checkout_traces, tmp_path
):
    """`Replayer.from_file(path).run()` in a script kept outside the project, run from the
    project folder: the project's modules are not on sys.path (the script's folder is), and the
    error names the folder to pass as cwd=; passing it reproduces the trace."""
    script = tmp_path / "replay_one.py"
    script.write_text(
        "import sys\n"
        "from prodture import Replayer\n"
        "cwd = sys.argv[2] if len(sys.argv) > 2 else None\n"
        "print(Replayer.from_file(sys.argv[1], cwd=cwd).run().reproduced)\n"
    )
    trace = str(checkout_traces["failing"])
    run = [sys.executable, str(script), trace]
    done = subprocess.run(run, cwd=checkout_dir, capture_output=True, text=True, timeout=60)
    message = done.stderr.strip().splitlines()[-1]
    assert message == (
        "prodture.replay.ReplayError: handler module 'checkout' cannot be imported: its folder is "
        f"not on sys.path; its project is {checkout_dir} (whose pyproject.toml lists "
        f"[tool.prodture] modules): pass cwd={str(checkout_dir)!r} (Replayer.from_file, "
        "load_trace; --cwd for the CLI)"
    )
    done = subprocess.run(
        [*run, str(checkout_dir)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "True\n"), done.stderr


def test_the_project_is_the_nearest_pyproject_with_a_prodture_table(tmp_path, monkeypatch):
    """``find_project`` (the pytest plugin's project of a trace) passes over a nearer
    pyproject.toml without ``[tool.prodture]``; ``project_config`` reads the nearest one."""
    monkeypatch.delenv("PRODTURE_MODULES", raising=False)
    (tmp_path / "pyproject.toml").write_text('[tool.prodture]\nmodules = ["outer"]\n')
    inner = tmp_path / "libs" / "inner"
    deep = inner / "tests" / "traces"
    deep.mkdir(parents=True)
    (inner / "pyproject.toml").write_text('[project]\nname = "inner"\n')
    assert find_project(str(deep)) == str(tmp_path)
    assert find_project(str(tmp_path)) == str(tmp_path)
    assert project_config(str(deep)) == ProjectConfig((), str(inner / "pyproject.toml"))
    (inner / "pyproject.toml").write_text('[tool.prodture]\nmodules = ["inner"]\n')
    assert find_project(str(deep)) == str(inner)
    assert project_config(str(deep)).modules == ("inner",)


def test_the_project_configuration_is_read_once_until_it_changes(tmp_path, monkeypatch):
    """Replaying many traces of one project parses its pyproject.toml once; an edit is seen."""
    monkeypatch.delenv("PRODTURE_MODULES", raising=False)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.prodture]\nmodules = ["one"]\n')
    parsed = _tool_prodture.cache_info().misses
    for _ in range(5):
        assert project_config(str(tmp_path)) == ProjectConfig(("one",), str(pyproject))
    assert _tool_prodture.cache_info().misses == parsed + 1
    pyproject.write_text('[tool.prodture]\nmodules = ["one", "two"]\n')
    assert project_config(str(tmp_path)).modules == ("one", "two")
