"""Evaluation core: tasks, backends, scorers and metrics. Imports no Lightning."""
