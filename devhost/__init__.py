"""A local Azure Functions host for the Python v2 programming model (never deployed).

It loads ``function_app.app``, reads ``host.json`` and ``local.settings.json``, and runs
HTTP, queue, timer and Event Grid blob-event triggers against Azurite with the real
runtime's semantics, for machines where Functions Core Tools cannot be installed.
"""
