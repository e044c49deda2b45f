"""edgeprof: an on-device profiler for compressed deep-learning models."""

__version__ = "0.1.0"
