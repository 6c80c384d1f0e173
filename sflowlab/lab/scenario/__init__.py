"""Scenarios: the file model, the runner, assertions, the recording and its outputs, the chart."""
