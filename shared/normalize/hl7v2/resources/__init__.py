"""One module per group of FHIR resources built from HL7 v2 segments."""
