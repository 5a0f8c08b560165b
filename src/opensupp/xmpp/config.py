"""What the XMPP bridge and Prosody share, and ``opensupp xmpp setup``, which writes both sides.

The agents log into Prosody (Debian's package) as ``uid<ID>@<domain>``; Prosody asks opensupp
whether the password is right (``mod_auth_opensupp.lua``, shipped here, calling the endpoint in
xmpp/auth.py) and routes everything addressed to ``*@visitors.<domain>`` to opensupp's XEP-0114
component (xmpp/bridge.py). ``write_setup`` writes:

- ``<out>/prosody.cfg.lua``: a whole Prosody configuration (run ``prosody --config`` on it as the
  prosody user): the virtual host with the authentication module, the privileges the component
  needs (XEP-0356: adding visitors to the agents' rosters, their presence), the component and its
  secret. Mode 0640, group prosody: it holds the two secrets;
- ``<out>/modules/mod_auth_opensupp.lua``;
- opensupp's side, ``<data_dir>/xmpp.json`` (mode 0600): the domain, where the component
  connects, the component's secret, and only the SHA-256 of the authentication secret.

Running it again writes new secrets on both sides (restart Prosody and opensupp).
"""

from __future__ import annotations

import contextlib
import datetime
import grp
import hashlib
import hmac
import ipaddress
import json
import os
import pwd
import re
import secrets
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from opensupp.config import Settings

FILE_NAME = "xmpp.json"
#: a DNS name as Prosody's host names are (IDNA A-labels; lower case)
DOMAIN = re.compile(r"(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")


class SetupError(ValueError):
    """A setup option that cannot work; the message says which and why."""


@dataclass(frozen=True, slots=True)
class XmppConfig:
    """opensupp's side of the XMPP setup (``<data_dir>/xmpp.json``)."""

    domain: str
    component_host: str
    component_port: int
    component_secret: str
    auth_secret_sha256: str

    @property
    def component(self) -> str:
        return f"visitors.{self.domain}"

    def auth_secret_matches(self, secret: str) -> bool:
        digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()
        return hmac.compare_digest(digest, self.auth_secret_sha256)


def config_path(settings: Settings) -> Path:
    return settings.xmpp_config or settings.data_dir / FILE_NAME


def load_config(settings: Settings) -> XmppConfig | None:
    """The setup's file, or None when there is none (XMPP is not set up). A broken file raises
    SetupError: a server that was set up for XMPP must not start silently without it."""
    path = config_path(settings)
    try:
        raw = json.loads(path.read_text())
        config = XmppConfig(**{name: raw[name] for name in XmppConfig.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SetupError(f"{path} is not an XMPP setup opensupp can read ({exc}): run `opensupp xmpp setup` "
                         "again") from None
    if not DOMAIN.fullmatch(config.domain) or not 0 < int(config.component_port) < 65536:
        raise SetupError(f"{path} is not an XMPP setup opensupp can read: run `opensupp xmpp setup` again")
    return config


def check_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise SetupError(f"--domain: {domain!r} is not a domain name") from None
    if not DOMAIN.fullmatch(domain) or "." not in domain:
        raise SetupError(f"--domain: {domain!r} is not a domain name, like chat.example.com")
    return domain


def _lua(text: str) -> str:
    """A Lua string literal (the config's values are ours, but paths and URLs come from options)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def prosody_config(*, domain: str, auth_url: str, auth_secret: str, component_secret: str, component_host: str,
                   component_port: int, c2s_port: int, c2s_interfaces: list[str], data_path: Path, modules: Path,
                   pidfile: Path, log_file: Path | None, certificate: Path, key: Path) -> str:
    component = f"visitors.{domain}"
    log = (f"log = {{ {{ levels = {{ min = \"info\" }}; to = \"file\"; filename = {_lua(str(log_file))} }} }}"
           if log_file is not None else 'log = { { levels = { min = "info" }; to = "console" } }')
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""-- Written by `opensupp xmpp setup --domain {domain}` on {stamp}: Prosody for opensupp's agents,
-- who log in as uid<ID>@{domain} with their opensupp password; visitors are {component} contacts.
-- Run it as the prosody user:  prosody --config <this file>   (README: "XMPP").
-- It holds two secrets: keep it readable by root and the prosody group only.

pidfile = {_lua(str(pidfile))}
certificates = {_lua(str(certificate.parent))}
data_path = {_lua(str(data_path))}
plugin_paths = {{ {_lua(str(modules))} }}
{log}

c2s_ports = {{ {c2s_port} }}
c2s_interfaces = {{ {"; ".join(_lua(i) for i in c2s_interfaces)} }}
-- the component connects from opensupp, on this machine only
component_ports = {{ {component_port} }}
component_interfaces = {{ {_lua(component_host)} }}
-- no federation, no HTTP: agents talk to visitors through opensupp only
modules_disabled = {{ "s2s" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}

-- PLAIN over TLS only: the password goes to opensupp, which checks it (argon2id)
c2s_require_encryption = true
allow_registration = false
modules_enabled = {{
    "roster"; "saslauth"; "tls"; "disco"; "carbons"; "ping"; "smacks"; "offline";
    "privilege"; -- XEP-0356 (Debian's prosody-modules): the component adds visitors to the agents' rosters
    "opensupp_isolate"; -- (opensupp's) agents of different accounts never reach one another
}}

VirtualHost {_lua(domain)}
    authentication = "opensupp"
    opensupp_auth_url = {_lua(auth_url)}
    opensupp_auth_secret = {_lua(auth_secret)}
    ssl = {{ certificate = {_lua(str(certificate))}; key = {_lua(str(key))} }}
    privileged_entities = {{
        -- the least the bridge needs: agents' rosters (visitors added) and their presence (their status)
        [{_lua(component)}] = {{ roster = "both"; presence = "managed_entity" }};
    }}

Component {_lua(component)}
    component_secret = {_lua(component_secret)}
    modules_enabled = {{ "privilege" }} -- it tells the component its privileges when it connects
"""


def write_setup(settings: Settings, *, domain: str, out: Path, opensupp_url: str, c2s_port: int = 5222,
                c2s_interfaces: tuple[str, ...] = ("*",), component_port: int = 5347,
                component_host: str = "127.0.0.1", data_path: Path = Path("/var/lib/prosody"),
                pidfile: Path | None = None, log_file: Path | None = None, certificate: Path | None = None,
                key: Path | None = None, owner: str | None = None) -> tuple[Path, Path, Path]:
    """Writes Prosody's config and module into ``out`` and opensupp's side into the data
    directory: (Prosody config, module, opensupp's file)."""
    domain = check_domain(domain)
    owner_ids = (0, 0)
    if owner is not None:
        try:
            entry = pwd.getpwnam(owner)
        except KeyError:
            raise SetupError(f"--owner: no user {owner!r} on this machine") from None
        owner_ids = (entry.pw_uid, entry.pw_gid)
    try:
        if not ipaddress.ip_address(component_host).is_loopback:
            raise SetupError("--component-host: the component's port must listen on a loopback address "
                             "(opensupp connects from this machine)")
    except ValueError:
        raise SetupError(f"--component-host: {component_host!r} is not an IP address") from None
    if not re.fullmatch(r"https?://[^\s\"]+", opensupp_url):
        raise SetupError("--opensupp-url: an http:// URL of this opensupp server, like http://127.0.0.1:8000")
    if c2s_port == component_port:
        raise SetupError("--c2s-port and --component-port must differ")
    out = out.absolute()
    modules = out / "modules"
    auth_secret, component_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    config = prosody_config(
        domain=domain, auth_url=opensupp_url.rstrip("/") + "/xmpp/auth", auth_secret=auth_secret,
        component_secret=component_secret, component_host=component_host, component_port=component_port,
        c2s_port=c2s_port, c2s_interfaces=list(c2s_interfaces), data_path=data_path.absolute(), modules=modules,
        pidfile=(pidfile or data_path / "prosody.pid").absolute(), log_file=log_file.absolute() if log_file else None,
        certificate=(certificate or Path(f"/etc/prosody/certs/{domain}.crt")).absolute(),
        key=(key or Path(f"/etc/prosody/certs/{domain}.key")).absolute())
    modules.mkdir(parents=True, exist_ok=True)
    for name in ("mod_auth_opensupp.lua", "mod_opensupp_isolate.lua"):
        (modules / name).write_text(resources.files("opensupp.xmpp").joinpath(name).read_text())
        (modules / name).chmod(0o644)
    module = modules / "mod_auth_opensupp.lua"
    prosody_file = out / "prosody.cfg.lua"
    _write_private(prosody_file, config, group="prosody")
    mine = XmppConfig(domain=domain, component_host=component_host, component_port=component_port,
                      component_secret=component_secret,
                      auth_secret_sha256=hashlib.sha256(auth_secret.encode()).hexdigest())
    opensupp_file = config_path(settings)
    opensupp_file.parent.mkdir(parents=True, exist_ok=True)
    _write_private(opensupp_file, json.dumps(asdict(mine), indent=2) + "\n", group=None)
    if owner is not None:  # run as root (it writes /etc/prosody), for the user who runs opensupp
        os.chown(opensupp_file, owner_ids[0], owner_ids[1])
    return prosody_file, module, opensupp_file


def _write_private(path: Path, text: str, *, group: str | None) -> None:
    """Written whole under a temporary name, then moved into place: mode 0600, or 0640 with
    ``group`` when it exists (Prosody reads its config as the prosody user)."""
    gid = None
    if group is not None:
        with contextlib.suppress(KeyError):
            gid = grp.getgrnam(group).gr_gid
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        if gid is not None:
            with contextlib.suppress(PermissionError):  # not root: the operator's own group stays
                os.chown(temporary, -1, gid)
                os.chmod(temporary, 0o640)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
