"""Use cases. Entry points (API, CLI, workers) call these; they own transactions."""
