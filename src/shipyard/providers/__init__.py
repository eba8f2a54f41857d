"""Model providers. The embedded local models live in ``providers.local``."""
