"""Hooks: URLs that receive reports, exports and webhook events (the rules live in ``rules``)."""
