"""Mail: offline messages to the account's offline e-mails and transcripts to visitors,
composed (compose.py), written to the outbox (service.py) and sent over SMTP (smtp.py)."""
