"""The chat core: visitors, page views, conversations and messages (models.py, service.py),
the partner API over them (api.py), and the realtime layer that the visitor and agent
connections use (hub.py, protocol.py, transport.py)."""
