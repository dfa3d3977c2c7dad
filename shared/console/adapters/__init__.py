"""The console's storage adapters."""
