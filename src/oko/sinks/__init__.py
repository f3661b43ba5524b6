"""Where events go."""

from oko.sinks.jsonl import JsonlSink

__all__ = ["JsonlSink"]
