"""The token a visitor keeps in the ``ssupp.vid`` cookie of the host page: its vid, signed."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING

from itsdangerous import Signer

if TYPE_CHECKING:
    from opensupp.config import Settings

VID_LENGTH = 22
_VID = re.compile(r"[A-Za-z0-9_-]{22}")


class VisitorTokens:
    """The token a visitor keeps: ``<vid>.<signature>``, signed with the site's secret key
    (itsdangerous, salt ``opensupp.visitor``) over the account id and the vid, so a token is
    only good for the account that issued it, and says nothing of the account."""

    SALT = "opensupp.visitor"

    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, salt=self.SALT, digest_method=hashlib.sha256)

    @classmethod
    def for_settings(cls, settings: Settings) -> VisitorTokens:
        """Signed with OPENSUPP_SECRET_KEY (or the key kept in the data directory), the key of
        the web pages' sessions: every process and restart reads the same."""
        # imported here: opensupp.site's package imports its app, which mounts the chat's
        # transport, which imports this module
        from opensupp.site.secret import secret_key

        return cls(secret_key(settings))

    def issue(self, account_id: int, vid: str) -> str:
        return f"{vid}.{self._signer.get_signature(f'{account_id}:{vid}').decode()}"

    def vid_of(self, account_id: int, token: str) -> str | None:
        """The vid of a good token of this account; None for any other (bad, foreign, garbage)."""
        vid, dot, signature = token.partition(".")
        if not dot or not _VID.fullmatch(vid) or len(signature) > 128:
            return None
        return vid if self._signer.verify_signature(f"{account_id}:{vid}", signature) else None


def new_vid() -> str:
    """22 url-safe random characters (132 bits)."""
    return secrets.token_urlsafe(16)[:VID_LENGTH]
