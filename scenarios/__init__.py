"""Scripted runs: the scenario schema, the runner and the built-in scenario files."""
