"""The pipeline between the stages: one runner for every queue message, and each
ingestion's journey."""
