"""Governance: the audit chain (PII, injection screening, budgets and retention come later)."""
