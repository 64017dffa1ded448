"""heatcompute node: a compute heater's local inference server, heat governor and job queue."""

__version__ = "0.1.0"
API_VERSION = "1"
