"""Readers that turn a file into a :class:`RawTable` of text cells with their file row numbers."""
