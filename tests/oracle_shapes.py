"""Handler shapes for the step-engine exactness oracle (tests/test_step_oracle.py).

Every shape every real service has, each with recorded errors caught at different levels:
``yield from`` helpers nested two deep (one catching and retrying, one re-raising), the same with
``async def`` and awaited helper coroutines, Command and ``pipeline`` handlers, a handler that
catches and swallows, generators closed early, a loop of 100k+ steps, and exceptions raised by
the handler's own code (caught, and uncaught through a bare ``raise``).

Only this file is user code for the oracle: the handlers call nothing else of the tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import prodture
from prodture import Command


@prodture.register(name="oracle.Declined")
class Declined(Exception):
    """The error the Charge performer raises for odd amounts (recorded, thrown back in replay)."""


@dataclasses.dataclass(frozen=True)
class Fetch(prodture.Effect, name="oracle.Fetch"):
    n: int


@dataclasses.dataclass(frozen=True)
class Charge(prodture.Effect, name="oracle.Charge"):
    amount: int


def perform_fetch(effect: Fetch) -> int:
    return effect.n * 3 + 1


def perform_charge(effect: Charge) -> str:
    if effect.amount % 2:
        raise Declined(f"amount {effect.amount} refused")
    return f"charged {effect.amount}"


PERFORMERS: dict[type, Callable[[Any], Any]] = {Fetch: perform_fetch, Charge: perform_charge}


# -- generators: yield from, nested two deep ---------------------------------------------------


def retrying_charge(amount):
    """Catches the recorded error and retries (a yield inside the except block)."""
    attempts = 0
    while True:
        attempts += 1
        try:
            receipt = yield Charge(amount + attempts - 1)
            return receipt
        except Declined as e:
            reason = str(e)
            if attempts >= 3:
                return f"gave up: {reason}"
            pause = yield Fetch(attempts)
            amount += pause - pause


def strict_charge(amount):
    """Re-raises the recorded error to its caller."""
    try:
        receipt = yield Charge(amount)
    except Declined:
        note = "declined"
        raise
    note = "ok"
    return receipt + note


def pay_twice(first, second):
    """One level down: delegates to both helpers (two deep from the handler)."""
    a = yield from retrying_charge(first)
    try:
        b = yield from strict_charge(second)
    except Declined as e:
        b = f"caught one level up: {e}"
    return [a, b]


@prodture.handler(name="oracle:gen_yield_from")
def gen_yield_from(request):
    got = yield Fetch(1)
    results = yield from pay_twice(request["first"], request["second"])
    try:
        last = yield from strict_charge(request["third"])
    except Declined as e:
        last = f"caught in the handler: {e}"
    total = got + len(results)
    return {"results": results, "last": last, "total": total}


# -- async def: awaited helper coroutines ------------------------------------------------------


async def retrying_charge_async(amount):
    attempts = 0
    while True:
        attempts += 1
        try:
            receipt = await Charge(amount + attempts - 1)
            return receipt
        except Declined as e:
            reason = str(e)
            if attempts >= 3:
                return f"gave up: {reason}"
            pause = await Fetch(attempts)
            amount += pause - pause


async def strict_charge_async(amount):
    try:
        receipt = await Charge(amount)
    except Declined:
        note = "declined"
        raise
    note = "ok"
    return receipt + note


async def pay_twice_async(first, second):
    a = await retrying_charge_async(first)
    try:
        b = await strict_charge_async(second)
    except Declined as e:
        b = f"caught one level up: {e}"
    return [a, b]


@prodture.handler(name="oracle:async_helpers")
async def async_helpers(request):
    got = await Fetch(1)
    results = await pay_twice_async(request["first"], request["second"])
    try:
        last = await strict_charge_async(request["third"])
    except Declined as e:
        last = f"caught in the handler: {e}"
    total = got + len(results)
    return {"results": results, "last": last, "total": total}


# -- a helper that catches the error thrown into it and returns, called in a loop ---------------


def charge_or_note(amount):
    """Catches the recorded error and returns: the caller resumes on its `yield from` line."""
    try:
        receipt = yield Charge(amount)
    except Declined as e:
        return f"noted: {e}"
    return receipt


@prodture.handler(name="oracle:gen_loop_caught")
def gen_loop_caught(request):
    kept = []
    for amount in request["amounts"]:
        receipt = yield from charge_or_note(amount)
        kept.append(receipt)
    return kept


async def charge_or_note_async(amount):
    try:
        receipt = await Charge(amount)
    except Declined as e:
        return f"noted: {e}"
    return receipt


@prodture.handler(name="oracle:async_loop_caught")
async def async_loop_caught(request):
    kept = []
    for amount in request["amounts"]:
        receipt = await charge_or_note_async(amount)
        kept.append(receipt)
    return kept


# -- Command handlers and pipelines ------------------------------------------------------------


def load(order):
    wanted = order["n"]
    return Command(Fetch(wanted), then=lambda value: value + 1)


def price(value):
    doubled = value * 2 + 1
    return Command(Charge(doubled), then=lambda receipt: receipt, on_error=on_declined)


def on_declined(error):
    fallback = f"declined: {error}"
    return Command(Fetch(len(fallback)), then=lambda n: fallback)


def summarize(receipt):
    words = receipt.split()
    return {"receipt": receipt, "words": len(words)}


command_pipeline = prodture.handler(
    prodture.pipeline(load, price, summarize), name="oracle:command_pipeline"
)


@prodture.handler(name="oracle:plain_command")
def plain_command(order):
    wanted = order["n"]
    return Command(Fetch(wanted), then=lambda value: finish_command(value))


def finish_command(value):
    doubled = value * 2
    return Command(Charge(doubled + 1), on_error=lambda error: str(error))


# -- catches and swallows; generators closed early ---------------------------------------------


@prodture.handler(name="oracle:swallows")
def swallows(request):
    kept = []
    for amount in request["amounts"]:
        try:
            receipt = yield Charge(amount)
            kept.append(receipt)
        except Exception:
            pass
    try:
        int("not a number")
    except ValueError:
        kept.append("parsed nothing")
    return kept


def countdown(n):
    try:
        while n > 0:
            yield n
            n -= 1
    finally:
        closed = True  # noqa: F841 - a line that runs when the generator is closed early


def helper_closed_early(limit):
    try:
        for _ in range(limit):
            got = yield Fetch(limit)  # noqa: F841 - a local the stops show
            limit -= 1
    finally:
        limit = -1


@prodture.handler(name="oracle:closed_early")
def closed_early(request):
    firsts = []
    for value in countdown(10):
        if value < 7:
            break
        firsts.append(value)
    numbers = countdown(3)
    first = next(numbers)
    numbers.close()
    got = yield Fetch(first)
    inner = helper_closed_early(5)
    asked = next(inner)
    answer = yield asked
    inner.close()
    return [firsts, got, answer]


def relay(limit):
    """Delegates to helper_closed_early; closed while suspended in its `yield from`."""
    try:
        got = yield from helper_closed_early(limit)
    finally:
        limit = 0
    return got


@prodture.handler(name="oracle:closed_delegating")
def closed_delegating(request):
    inner = relay(4)
    asked = next(inner)
    answer = yield asked
    again = inner.send(answer)
    answer = yield again
    inner.close()
    return answer


# -- a long loop -------------------------------------------------------------------------------


@prodture.handler(name="oracle:long_loop")
def long_loop(request):
    acc = 0
    for i in range(request["n"]):
        acc += i % 7
        if i % 10_000 == 0:
            acc += yield Fetch(i)
    return acc


# -- the handler's own exceptions --------------------------------------------------------------


class PaymentDeclined(Exception):
    pass


def validate(amount):
    if amount <= 0:
        raise PaymentDeclined("amount must be greater than zero")
    return amount


@prodture.handler(name="oracle:own_raise")
def own_raise(request):
    got = yield Fetch(2)
    try:
        validate(got - 100)
    except PaymentDeclined as e:
        first = str(e)
    try:
        receipt = yield Charge(request["amount"])
    except Declined:
        receipt = None
    try:
        validate(request["amount"] - got)
    except PaymentDeclined:
        note = "declined by the handler's own check"
        raise
    return [first, receipt, note]


@prodture.handler(name="oracle:uncaught_effect_error")
def uncaught_effect_error(request):
    got = yield Fetch(3)
    receipt = yield from strict_charge(got + 1)
    return receipt


# -- requests: what each shape is recorded with -------------------------------------------------

SHAPES = {
    "gen_yield_from": (gen_yield_from, {"first": 3, "second": 5, "third": 7}),
    "async_helpers": (async_helpers, {"first": 3, "second": 5, "third": 7}),
    "gen_loop_caught": (gen_loop_caught, {"amounts": [3, 5, 4, 7]}),
    "async_loop_caught": (async_loop_caught, {"amounts": [3, 5, 4, 7]}),
    "command_pipeline": (command_pipeline, {"n": 2}),
    "plain_command": (plain_command, {"n": 2}),
    "swallows": (swallows, {"amounts": [2, 3, 4, 5]}),
    "closed_early": (closed_early, {}),
    "closed_delegating": (closed_delegating, {}),
    "long_loop": (long_loop, {"n": 35_000}),
    "own_raise": (own_raise, {"amount": 5}),
    "uncaught_effect_error": (uncaught_effect_error, {}),
}
