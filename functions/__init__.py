"""Thin trigger adapters, one Blueprint per stage; the logic lives in ``shared``."""
