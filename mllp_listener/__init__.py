"""The MLLP listener: HL7 v2 over TCP for interface engines, beside the Function App.

The Functions runtime cannot listen on a TCP socket, so this small asyncio server runs on
its own (a container on Azure Container Apps with TCP ingress, a VM, or on premises) and
submits every frame through the same submission service as ``POST /api/ingest``. It is
never deployed inside the Function App (``.funcignore``).
"""
