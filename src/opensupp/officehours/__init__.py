"""Office hours: one per account (its shape and checks live in ``validation``, its maths in ``schedule``)."""
