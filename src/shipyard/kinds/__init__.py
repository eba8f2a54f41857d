"""Task kinds: one small strategy per kind, looked up in a registry (no switch statements)."""
