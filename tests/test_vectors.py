"""Golden vectors (protocol/vectors): bytes <-> JSON both ways, and the encoder still writes the same bytes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from prodture.trace import REDACTED, read_trace

VECTORS = Path(__file__).resolve().parent.parent / "protocol" / "vectors"


def _load_generator():
    name = "prodture_vectors_generate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, VECTORS / "generate.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


gen = _load_generator()
NAMES = sorted(gen.VECTORS)


def test_every_vector_is_present():
    """Each vector the generator defines exists as a .prodtrace file with its .json beside it."""
    assert NAMES == ["all-ext-types", "failure", "redacted", "simple-success", "truncated-prefix"]
    for name in NAMES:
        assert (VECTORS / f"{name}.prodtrace").is_file() and (VECTORS / f"{name}.json").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_decoding_a_vector_gives_its_json(name):
    """Decoding the vector's bytes, rendered as specified, equals the records and tail in its JSON file."""
    data = (VECTORS / f"{name}.prodtrace").read_bytes()
    doc = json.loads((VECTORS / f"{name}.json").read_text())
    records, tail = gen.raw_records(data)
    assert [gen.render(r) for r in records] == doc["records"]
    assert (tail or None) == (gen.base64.b64decode(doc["tail"]) if doc["tail"] else None)


@pytest.mark.parametrize("name", NAMES)
def test_packing_a_vectors_json_gives_its_bytes(name):
    """Packing the JSON rendering back to msgpack gives the vector's exact bytes."""
    doc = json.loads((VECTORS / f"{name}.json").read_text())
    assert gen.from_json(doc) == (VECTORS / f"{name}.prodtrace").read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_encoder_reproduces_each_vector_byte_for_byte(name):
    """The current encoder, given the vector's content, writes exactly the committed bytes."""
    build, _ = gen.VECTORS[name]
    assert build() == (VECTORS / f"{name}.prodtrace").read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_reader_reports_what_each_vector_expects(name):
    """TraceReader reports the handler, completeness, effects and outcome recorded in the vector's JSON."""
    expect = json.loads((VECTORS / f"{name}.json").read_text())["expect"]
    trace = read_trace(VECTORS / f"{name}.prodtrace")
    assert trace.header.handler == expect["handler"] and trace.header.trace_id == expect["trace_id"]
    assert (trace.complete, trace.truncated) == (expect["complete"], expect["truncated"])
    assert [[e.seq, e.type, e.ok] for e in trace.effects] == expect["effects"]
    if expect["outcome"] is None:
        assert trace.outcome is None
    else:
        assert (trace.outcome.ok, trace.outcome.failed_effect) == (
            expect["outcome"]["ok"],
            expect["outcome"]["failed_effect"],
        )


def test_all_ext_types_vector_decodes_to_the_original_values():
    """Every value of the all-ext-types vector decodes to a value equal to the one encoded."""
    trace = read_trace(VECTORS / "all-ext-types.prodtrace")
    for effect, (name, value) in zip(trace.effects, gen.ALL_VALUES, strict=False):
        assert effect.request == {"kind": name}
        if name == "error":
            assert type(effect.result) is gen.PaymentDeclined and effect.result.args == value.args
            assert effect.result.code == "card_declined"
        elif name == "redacted":
            assert effect.result is REDACTED
        else:
            assert effect.result == value and type(effect.result) is type(value), name


def test_redacted_vector_holds_no_secret():
    """The redacted vector contains none of the secrets that were in the recorded values."""
    data = (VECTORS / "redacted.prodtrace").read_bytes()
    assert all(s.encode() not in data for s in gen.SECRETS)
    trace = read_trace(data)
    assert trace.effects[0].request == {"user": "ada", "password": REDACTED, "otp": REDACTED}
    assert trace.input["api_key"] is REDACTED and trace.input["card"]["card_number"] is REDACTED
