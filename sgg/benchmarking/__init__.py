"""Experiment runners: many training runs as subprocesses, read back into one comparison table (runner.py)."""
