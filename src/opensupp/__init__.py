"""opensupp: a self-hostable live-chat provisioning server (Smartsupp partner REST API)."""

__version__ = "0.1.0"
