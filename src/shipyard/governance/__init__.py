"""Governance: the audit chain, budgets, rate limits, retention, PII and injection screening."""
