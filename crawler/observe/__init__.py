"""Observation: metrics, the live display, logs and reports."""
