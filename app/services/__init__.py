"""Use cases: core rules + store + backends, one module each."""
