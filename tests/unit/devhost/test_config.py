"""host.json and local.settings.json parsing, with the runtime's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.config import (
    DEFAULT_BODY_LIMIT,
    HostConfigError,
    load_host_options,
    load_local_settings,
    parse_timespan,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("00:00:30", 30),
        ("00:01:00", 60),
        ("01:00:00", 3600),
        ("1.02:00:00", 93600),
        ("00:00:00.5", 0.5),
    ],
)
def test_timespans(value: str, seconds: float) -> None:
    assert parse_timespan(value, setting="x") == seconds


def test_polling_interval_also_takes_milliseconds() -> None:
    assert parse_timespan(2000, setting="maxPollingInterval", ms_integers=True) == 2.0
    with pytest.raises(HostConfigError, match="maxPollingInterval"):
        parse_timespan(2000, setting="maxPollingInterval")


def test_missing_host_json_means_runtime_defaults(tmp_path: Path) -> None:
    options = load_host_options(tmp_path / "host.json", environ={})
    assert options.http.route_prefix == "api"
    assert options.http.max_body_bytes == DEFAULT_BODY_LIMIT
    queues = options.queues
    assert (queues.batch_size, queues.new_batch_threshold, queues.max_dequeue_count) == (16, 8, 5)
    assert (queues.max_polling_interval, queues.visibility_timeout) == (60.0, 0.0)
    assert queues.message_encoding == "base64"
    assert options.function_timeout == 300.0


def test_repo_host_json_is_read(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(
        json.dumps(
            {
                "functionTimeout": "00:10:00",
                "extensions": {
                    "http": {"routePrefix": "/v1/"},
                    "queues": {
                        "batchSize": 4,
                        "maxPollingInterval": "00:00:02",
                        "visibilityTimeout": "00:00:30",
                        "messageEncoding": "None",
                    },
                },
            }
        )
    )
    options = load_host_options(path, environ={"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "1234"})
    assert options.http.route_prefix == "v1"
    assert options.http.max_body_bytes == 1234
    assert options.queues.batch_size == 4
    assert options.queues.new_batch_threshold == 2  # half the batch size unless set
    assert options.queues.max_polling_interval == 2.0
    assert options.queues.message_encoding == "none"
    assert options.function_timeout == 600.0


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"extensions": {"queues": {"batchSize": 33}}}, "batchSize"),
        ({"extensions": {"queues": {"messageEncoding": "utf8"}}}, "messageEncoding"),
        ({"extensions": {"queues": {"visibilityTimeout": "soon"}}}, "visibilityTimeout"),
        ({"functionTimeout": "ten minutes"}, "functionTimeout"),
    ],
)
def test_bad_host_json_names_the_setting(tmp_path: Path, doc: dict, message: str) -> None:  # type: ignore[type-arg]
    path = tmp_path / "host.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(HostConfigError, match=message):
        load_host_options(path, environ={})


def test_host_json_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text("{")
    with pytest.raises(HostConfigError, match="not valid JSON"):
        load_host_options(path, environ={})


def test_local_settings_values_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(
        json.dumps(
            {
                "Values": {"A": "1", "B": 2},
                "Host": {"LocalHttpPort": 7072},
                "DevHost": {"FunctionKeys": {"default": "k1", "empty": ""}, "MasterKey": "m"},
            }
        )
    )
    local = load_local_settings(path)
    assert local.values == {"A": "1", "B": "2"}
    assert local.function_keys == {"default": "k1"}
    assert (local.master_key, local.port) == ("m", 7072)
