"""The chat box's look: its colour, side and texts, one per account."""
