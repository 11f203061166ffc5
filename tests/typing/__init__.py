"""Type-checked only, never executed: how users call the public API."""
