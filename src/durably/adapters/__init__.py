"""Adapters: one module per backend (memory, sqlite, postgres) and per tracker transport."""
