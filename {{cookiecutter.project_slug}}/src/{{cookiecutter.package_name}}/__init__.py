"""The project package: data, pipeline stages, the prediction service and monitoring."""

__version__ = "0.1.0"
