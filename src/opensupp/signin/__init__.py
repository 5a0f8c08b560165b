"""Signing users in to the dashboard: one-time links, failed attempts and their lockouts."""
