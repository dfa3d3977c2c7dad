"""Export files on a real Azurite: written block by block, committed whole, never empty."""

from __future__ import annotations

import json

import pytest

from shared import wiring
from shared.platform.names import Container
from shared.platform.provision import provision_storage
from shared.records.adapters.export_files import BlobNdjsonWriter, read_export_file

pytestmark = pytest.mark.azurite


def test_a_file_is_staged_in_blocks_and_reads_back_line_for_line(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    provision_storage(clients)
    container = clients.container(Container.EXPORTS)
    writer = BlobNdjsonWriter(container, "job/Observation.ndjson", block_bytes=1024)
    for n in range(200):
        writer.write({"resourceType": "Observation", "id": f"o{n}", "status": "final"})
        if n == 100:  # nothing is visible before the commit
            assert read_export_file(container, "job/Observation.ndjson") is None
    writer.close()
    blocks = container.get_blob_client("job/Observation.ndjson").get_block_list()[0]
    assert len(blocks) > 5  # the buffer never held more than about a block
    chunks = read_export_file(container, "job/Observation.ndjson")
    assert chunks is not None
    lines = b"".join(chunks).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"o{n}" for n in range(200)]
    empty = BlobNdjsonWriter(container, "job/Nothing.ndjson")
    empty.close()
    assert read_export_file(container, "job/Nothing.ndjson") is None
