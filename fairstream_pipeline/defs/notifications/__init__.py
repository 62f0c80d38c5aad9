"""Notifications: statements published to the app database, the email outbox and its sender."""
