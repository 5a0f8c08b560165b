"""Every table, imported in one place so Alembic sees the whole schema."""

from opensupp.accounts.models import accounts
from opensupp.boxlook.models import box_looks
from opensupp.chat.models import conversations, messages, page_views, visitors
from opensupp.db import metadata
from opensupp.hooks.models import hooks
from opensupp.idempotency.models import idempotency_keys
from opensupp.officehours.models import office_hours
from opensupp.offlineemails.models import offline_emails
from opensupp.outbox.models import deliveries
from opensupp.partners.models import api_keys, partners
from opensupp.signin.models import ended_sessions, login_links, sign_in_attempts
from opensupp.triggers.models import triggers
from opensupp.users.models import users

__all__ = ["metadata", "partners", "api_keys", "accounts", "idempotency_keys", "users", "offline_emails", "triggers",
           "office_hours", "hooks", "visitors", "page_views", "conversations", "messages",
           "login_links", "sign_in_attempts", "ended_sessions", "box_looks",
           "deliveries"]
