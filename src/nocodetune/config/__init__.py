"""Job configuration: the schema, inheritance and pre-flight validation (an engine layer)."""
