"""Integrations with third-party libraries (each an optional extra; none is imported by the
production core)."""
