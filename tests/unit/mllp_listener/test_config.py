"""Listener configuration: what an operator may write, and what is refused at start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from mllp_listener.config import ListenerConfig, load_listeners


def test_a_file_with_several_listeners_loads_with_the_defaults() -> None:
    path = Path(__file__).with_name("listeners.sample.json")
    (first, second) = load_listeners(path)
    assert (first.port, first.partner, first.enhanced) == (2575, "lab-a", False)
    assert first.idle_timeout == 300 and first.read_timeout == 30 and first.write_timeout == 30
    assert first.application_ack_to is None  # application ACKs only over HTTP by default
    assert second.application_ack_to == "engine.example.org:6661" and second.enhanced


@pytest.mark.parametrize(
    "entry",
    [
        {"port": 2575, "partner": "Lab A"},  # not a partner id
        {"port": 70000, "partner": "lab-a"},
        {"port": 2575, "partner": "lab-a", "tls_cert": "a.pem"},  # no key
        {"port": 2575, "partner": "lab-a", "application_ack_to": "engine"},  # no port
        {"port": 2575, "partner": "lab-a", "read_timeout": 0},
        {"port": 2575, "partner": "lab-a", "unknown": 1},
    ],
)
def test_mistakes_are_refused(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ListenerConfig.model_validate(entry)


def test_two_listeners_on_one_port_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    path.write_text(json.dumps({"listeners": [{"port": 1, "partner": "ab"}] * 2}))
    with pytest.raises(ValueError, match="share a port"):
        load_listeners(path)
