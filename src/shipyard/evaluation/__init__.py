"""Evaluation datasets (metrics, gates and reports arrive with the evaluation issue)."""
