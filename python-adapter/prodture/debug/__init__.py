"""Runs inside the debuggee: the step engine (time travel by re-execution) and its debugpy host."""
