"""The opensupp Python SDK: ``Client`` and ``AsyncClient`` for the partner REST API.

It imports nothing of the server, so partners can install and use it on its own.

    from opensupp.client import Client

    with Client("https://chat.example.com", "osk_...") as client:
        account = client.accounts.create(title="Acme", lang="en")
        for user in client.users.list(account.id):
            print(user.email)

Every create sends an ``Idempotency-Key`` (the same one on each retry of a call), so a
retry never creates twice. Connection errors, 408, 429 (honouring ``Retry-After``) and
5xx are retried ``max_retries`` times with exponential backoff and jitter.
"""

from opensupp.client._client import AsyncClient, Client
from opensupp.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthError,
    BadRequestError,
    ConflictError,
    IdempotencyMismatchError,
    InvalidJSONError,
    MethodNotAllowedError,
    NotFoundError,
    OpensuppError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from opensupp.client.models import Account, Hook, OfficeHours, OfflineEmail, Trigger, User

__all__ = [
    "Client",
    "AsyncClient",
    "Account",
    "User",
    "Trigger",
    "OfficeHours",
    "OfflineEmail",
    "Hook",
    "OpensuppError",
    "APIConnectionError",
    "APITimeoutError",
    "APIStatusError",
    "BadRequestError",
    "InvalidJSONError",
    "ValidationError",
    "AuthError",
    "NotFoundError",
    "MethodNotAllowedError",
    "ConflictError",
    "PayloadTooLargeError",
    "IdempotencyMismatchError",
    "RateLimitError",
    "ServerError",
]
