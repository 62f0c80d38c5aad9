"""Statement emails, the outbox queue and the mail sender."""
