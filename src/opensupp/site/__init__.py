"""The web pages: everything the server answers that is not the partner API (web/front.py
sends them here), on Starlette: the start page, static files, and what the chat runtime
adds (the chat box, the agents' dashboard, websockets). Templates in ``templates/``
(Jinja2, autoescaped), files in ``static/`` (fingerprinted: site/static.py), sessions in a
signed cookie (site/secret.py), CSRF on every form (site/csrf.py).
"""

from opensupp.site.app import Site, create_site

__all__ = ["Site", "create_site"]
