"""Office hours: one per account (the rules live in ``rules``)."""
