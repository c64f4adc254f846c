"""Registers the corpus plugin for a plain ``pytest`` run from the repository root."""
pytest_plugins = ["harness.running.plugin"]
