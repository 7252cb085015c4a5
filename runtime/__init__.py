"""The runtime: EddaApp (a node), decorators, context, replay, retry, hooks."""
