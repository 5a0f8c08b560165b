"""Every table, imported in one place so Alembic sees the whole schema."""

from opensupp.accounts.models import accounts
from opensupp.db import metadata
from opensupp.idempotency.models import idempotency_keys
from opensupp.offlineemails.models import offline_emails
from opensupp.partners.models import api_keys, partners
from opensupp.users.models import users

__all__ = ["metadata", "partners", "api_keys", "accounts", "idempotency_keys", "users", "offline_emails"]
