"""Senses: micro-models read live video, audio and text; their events are fused into alerts."""
