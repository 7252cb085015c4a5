"""Actors: the workflow actor, the supervisor tree, node leases and recovery.

Imports the journal and transports, never the runtime above it.
"""
