"""Languages of the chat box and e-mails: the list lives in the client distribution
(``opensupp_client.langs``), shared with ``opensupp provision``'s checks."""

from opensupp_client.langs import LANGS

__all__ = ["LANGS"]
