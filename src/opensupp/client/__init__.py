"""The Python SDK, under its former name: ``opensupp.client`` re-exports ``opensupp_client``
(the ``opensupp-client`` distribution, which installs without the server). New code imports
``opensupp_client``."""

from opensupp_client import *  # noqa: F403
from opensupp_client import __all__, __version__  # noqa: F401
