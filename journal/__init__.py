"""The journal: entry types, codecs, schema and migrations, stores, group commit.

Imports nothing from the layers above it.
"""
