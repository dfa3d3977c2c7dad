"""The local secret store: a 0600 JSON file, safe with concurrent writers."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.platform.adapters import FileSecretStore
from shared.platform.secrets import SecretNotFoundError


def test_set_get_delete(tmp_path: Path) -> None:
    store = FileSecretStore(tmp_path / "nested" / "secrets.json")
    with pytest.raises(SecretNotFoundError):
        store.get("webhook-a-1")
    store.set("webhook-a-1", "whsec_abc")
    assert store.get("webhook-a-1") == "whsec_abc"
    assert stat.S_IMODE((tmp_path / "nested" / "secrets.json").stat().st_mode) == 0o600
    store.delete("webhook-a-1")
    store.delete("webhook-a-1")
    with pytest.raises(SecretNotFoundError):
        store.get("webhook-a-1")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"

    def write(n: int) -> None:
        FileSecretStore(path).set(f"s-{n}", f"v-{n}")  # a store per writer, like two hosts

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(40)))
    store = FileSecretStore(path)
    assert all(store.get(f"s-{n}") == f"v-{n}" for n in range(40))
