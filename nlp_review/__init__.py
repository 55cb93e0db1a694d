"""Batch record review by exception: spaCy pipeline, structured checks, review queue, search."""
