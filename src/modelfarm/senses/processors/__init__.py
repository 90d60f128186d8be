"""Processors: micro-models that turn frames, audio chunks and text into typed events."""
