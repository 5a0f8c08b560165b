"""Bulk provisioning from a CSV or NDJSON file, resumable and never creating twice; and export.

The engine behind ``opensupp provision`` and ``opensupp export`` (the click commands are in
``opensupp_client.cli``), in the order a run goes through it:

- ``reading``: the file into rows (CSV or NDJSON; a CSV's delimiter detected or given);
- ``validating``: every row checked before any request, by the server's own rules
  (``opensupp_client.values``);
- ``planning``: each row as steps (account, users, triggers, office hours, offline
  e-mails, hooks), each with an identity that survives edits elsewhere in the row;
- ``journal``: ``FILE.journal``, what was done, so that a re-run resumes;
- ``running``: the rows through the SDK, many at once, each landing whole or rolled back;
- ``results``: ``FILE.results.json``; and ``export``, the way back.

Input formats (one account per row; line numbers are the file's own, starting at 1):

- CSV, with a header: ``title,lang`` and, for the account's first admin,
  ``email,fullname,password`` (an empty ``email`` means no user). The admin is created
  with ``role: admin``.
- NDJSON (``.ndjson``/``.jsonl``): one JSON object per line, everything under the account
  in the API's shapes::

      {"title": "Acme", "lang": "en",
       "users": [{"email", "fullname", "password", "role", "nickname", "avatar", "note", "lang"}],
       "triggers": [{"name", "actions", "conditions", "active", "description", "event", "only_once", "constraints"}],
       "officehours": {"active", "days", "timezone", "config"},
       "offlineemails": ["a@example.com" or {"email": "a@example.com"}],
       "hooks": [{"name", "config", "active"}]}
"""

from opensupp_client.provision.export import export, export_account
from opensupp_client.provision.journal import Journal, JournalBusy
from opensupp_client.provision.planning import Step, canonical, digest, plan
from opensupp_client.provision.reading import (
    CSV_COLUMNS,
    FORMATS,
    Problem,
    Row,
    detect_delimiter,
    detect_format,
    hints,
    read_rows,
)
from opensupp_client.provision.results import now_iso, render_json, results, write_json_atomically
from opensupp_client.provision.running import Failure, Outcome, Provisioner
from opensupp_client.provision.validating import load, validate

__all__ = [
    "CSV_COLUMNS", "FORMATS", "Failure", "Journal", "JournalBusy", "Outcome", "Problem", "Provisioner", "Row", "Step",
    "canonical", "detect_delimiter", "detect_format", "digest", "export", "export_account", "hints", "load", "now_iso",
    "plan", "read_rows", "render_json", "results", "validate", "write_json_atomically",
]
