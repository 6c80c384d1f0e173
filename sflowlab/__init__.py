"""sflowlab: an sFlow v5 toolkit for testing and running telemetry-driven automation."""

__version__ = "0.1.0"
