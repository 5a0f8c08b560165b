"""Triggers (auto-messages): the catalogue of their conditions and actions, and, later, the engine."""
