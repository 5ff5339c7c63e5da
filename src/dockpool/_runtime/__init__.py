"""The runtime: the pool object, its reconciler and listener threads, and the effect executor."""
