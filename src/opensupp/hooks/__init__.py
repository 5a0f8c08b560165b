"""Hooks: URLs that receive reports, exports and webhook events (the checks live in ``validation``)."""
