"""The ``winback`` command: thin shells that parse, call a stage's service and render."""
