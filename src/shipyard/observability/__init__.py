"""Metrics (Prometheus), traces (OpenTelemetry) and structured JSON logs."""
