"""The ``intake`` command line: run the stack locally, and operator tools."""
