"""Intake: partner submissions over HTTP and as dropped files, and their HL7 ACKs."""
