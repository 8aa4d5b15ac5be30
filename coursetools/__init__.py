"""Authoring tools for the course: execute notebooks, generate exercises, benchmark."""
