"""Handler registration: a name names one handler; pipelines are registered with name=."""

from __future__ import annotations

import types

import pytest

import prodture
from prodture import Command
from prodture.runtime import handler_name, handlers


def _steps(module_name: str) -> tuple:
    """Two pipeline steps named load / save, defined in their own module."""
    module = types.ModuleType(module_name)
    exec(
        "from prodture import Command\n"
        "def load(x):\n    return x + 1\n"
        "def save(x):\n    return x * 2\n",
        module.__dict__,
    )
    return module.load, module.save


def test_two_pipelines_with_the_same_step_names_are_refused_under_one_key():
    """The second pipeline(load, save) of other steps is refused with an error naming both."""
    first = prodture.handler(prodture.pipeline(*_steps("tests_registry_orders")))
    with pytest.raises(ValueError) as refused:
        prodture.handler(prodture.pipeline(*_steps("tests_registry_refunds")))
    message = str(refused.value)
    assert "tests_registry_orders:load, tests_registry_orders:save" in message
    assert "tests_registry_refunds:load, tests_registry_refunds:save" in message
    assert "name=" in message
    key = handler_name(first)
    assert handlers[key] is first  # the first registration stands


def test_pipelines_registered_with_name_replay_their_own_steps():
    """With name=, both pipelines are registered and each name runs its own steps."""
    orders = prodture.handler(
        prodture.pipeline(*_steps("tests_registry_named_a")), name="tests.registry:orders"
    )
    refunds = prodture.handler(
        prodture.pipeline(*_steps("tests_registry_named_b")), name="tests.registry:refunds"
    )
    assert handlers["tests.registry:orders"] is orders
    assert handlers["tests.registry:refunds"] is refunds
    assert handler_name(refunds) == "tests.registry:refunds"


def test_the_same_definition_registered_again_replaces_it():
    """Importing a module twice (or reloading it) registers the same handler again without error."""
    made = []
    for _ in range(2):

        def handle(request):
            return Command(request)  # never run

        made.append(prodture.handler(handle, name="tests.registry:same"))
    assert handlers["tests.registry:same"] is made[1]
    with pytest.raises(ValueError, match="already registered for .*handle"):
        prodture.handler(lambda request: None, name="tests.registry:same")
