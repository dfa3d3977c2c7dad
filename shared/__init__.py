"""fhir-intake domain and infrastructure code; importable without ``azure.functions``."""

__version__ = "0.1.0"
