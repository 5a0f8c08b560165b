"""The opensupp Python SDK: ``Client`` and ``AsyncClient`` for the partner REST API.

It imports nothing of the server: the ``opensupp-client`` distribution installs on its own
(httpx, click, rich, email-validator). The base URL and the key are read from
``OPENSUPP_API_URL`` and ``OPENSUPP_API_KEY`` when not passed (arguments win).

    from opensupp_client import Client

    with Client("https://chat.example.com", "osk_...") as client:
        account = client.accounts.create(title="Acme", lang="en")
        for user in client.users.list(account.id):
            print(user.email)

Every create sends an ``Idempotency-Key`` (the same one on each retry of a call), so a
retry never creates twice. Connection errors, 408, 429 (honouring ``Retry-After``) and
5xx are retried ``max_retries`` times with exponential backoff and jitter.
"""

from opensupp_client._client import AsyncClient, Client
from opensupp_client._version import __version__
from opensupp_client.errors import (
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
from opensupp_client.models import (
    Account,
    Conversation,
    Delivery,
    Hook,
    Message,
    OfficeHours,
    OfflineEmail,
    Trigger,
    User,
)

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "Account",
    "User",
    "Trigger",
    "OfficeHours",
    "OfflineEmail",
    "Hook",
    "Delivery",
    "Conversation",
    "Message",
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
