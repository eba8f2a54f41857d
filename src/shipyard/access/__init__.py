"""Tenants, principals, API keys, roles and authorization decisions."""
