"""Mail: subscribers, the MIME message, SMTP/outbox transport and the delivery log."""
