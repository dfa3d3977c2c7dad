"""Every name the code uses is valid for its storage service, with and without a prefix."""

from __future__ import annotations

import re

import pytest

from shared.platform.names import Container, Queue, Table, physical_name, poison_queue

# The service rules (Azure Storage naming documentation).
CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
QUEUE = CONTAINER
TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


@pytest.mark.parametrize("prefix", ["", "t0123456789abcde"])
def test_names_are_valid(prefix: str) -> None:
    for container in Container:
        assert CONTAINER.match(physical_name(container, prefix)), container
    for queue in Queue:
        assert QUEUE.match(physical_name(queue, prefix)), queue
        assert QUEUE.match(physical_name(poison_queue(queue), prefix)), queue
    for table in Table:
        assert TABLE.match(physical_name(table, prefix, table=True)), table


def test_poison_twin_is_named_as_the_runtime_names_it() -> None:
    assert poison_queue(Queue.NORMALIZE) == "normalize-poison"
    assert physical_name(poison_queue(Queue.NORMALIZE), "t1") == "t1-normalize-poison"
