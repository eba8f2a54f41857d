"""Prometheus metrics, one registry per application instance (no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LLM_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "shipyard_runs", "Task runs by outcome", ["task", "version", "status"], registry=r
        )
        self.run_latency = Histogram(
            "shipyard_run_latency_seconds",
            "End-to-end run latency inside the service",
            ["task", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_latency = Histogram(
            "shipyard_model_latency_seconds",
            "Model inference latency",
            ["task", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.confidence = Histogram(
            "shipyard_run_confidence",
            "Confidence of run outputs",
            ["task", "version"],
            buckets=_CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "shipyard_errors", "Errors answered, by problem type", ["type"], registry=r
        )
        self.http_requests = Counter(
            "shipyard_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "shipyard_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_ready = Gauge(
            "shipyard_task_ready", "1 when the task's model is loaded", ["task"], registry=r
        )
        self.documents = Counter(
            "shipyard_documents_processed",
            "Documents processed by ingestion, by outcome (indexed, rejected)",
            ["status"],
            registry=r,
        )
        self.chunks = Counter("shipyard_chunks_indexed", "Chunks written to the index", registry=r)
        self.ingest_latency = Histogram(
            "shipyard_ingest_document_seconds",
            "Time to parse, chunk, embed and index one document",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.search_latency = Histogram(
            "shipyard_search_seconds",
            "Knowledge search latency (embedding the query included)",
            ["mode"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # LLM providers: one sample per route entry tried (after that entry's retries).
        self.llm_calls = Counter(
            "shipyard_llm_calls",
            "LLM calls per route entry, by outcome (ok, invalid_output, timeout, ...)",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "shipyard_llm_tokens",
            "LLM tokens billed, by direction (input, output)",
            ["provider", "model", "direction"],
            registry=r,
        )
        self.llm_cost = Counter(
            "shipyard_llm_cost",
            "LLM cost from the configured price table (models without a price not counted)",
            ["provider", "model"],
            registry=r,
        )
        self.llm_latency = Histogram(
            "shipyard_llm_latency_seconds",
            "LLM call latency per route entry, retries and back-off included",
            ["provider", "model"],
            buckets=_LLM_LATENCY_BUCKETS,
            registry=r,
        )
        self.budget_remaining = Gauge(
            "shipyard_budget_remaining",
            "What is left of a budget in its current period, as of its last check",
            ["tenant", "task", "period", "kind"],
            registry=r,
        )
        self.breaker_open = Gauge(
            "shipyard_breaker_open",
            "1 while a provider's circuit breaker is open or half-open, else 0",
            ["provider"],
            registry=r,
        )
