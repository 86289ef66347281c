"""Executors: perform the effects of action commands (email, SMS, Slack, webhooks)."""
