"""opensupp.db.children: a table under an account answers its domain's records."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from opensupp.db.children import ChildTable
from opensupp.hooks.service import HOOKS
from opensupp.offlineemails.service import OFFLINE_EMAILS
from opensupp.users.service import USERS


@dataclass(frozen=True, slots=True)
class Pair:
    id: int
    name: str


def test_a_record_whose_fields_are_not_the_columns_is_refused_at_import():
    """A record is built from a row by position: a field out of step with the columns read
    would put every value in the wrong place, so the table refuses it when declared."""
    assert ChildTable("pairs", "pair", ("id", "name"), record=Pair).select == "id, name"
    with pytest.raises(TypeError, match="are not the columns"):
        ChildTable("pairs", "pair", ("name", "id"), record=Pair)
    with pytest.raises(TypeError, match="are not the columns"):
        ChildTable("pairs", "pair", ("id", "name", "created_at"), record=Pair)


def test_the_tables_read_what_their_records_hold():
    assert USERS.columns[0] == OFFLINE_EMAILS.columns[0] == HOOKS.columns[0] == "id"
    assert "password_hash" not in USERS.columns  # a user record never carries it
