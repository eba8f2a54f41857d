"""A project of generate tasks served by the real llama.cpp server (tests/providers/llm),
reached through a fault proxy whose request log shows what was sent to the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.bootstrap import Container, build
from shipyard.settings import Settings
from tests.providers.llm.conftest import MODEL, provider_settings

PROVIDER = "local-server"
PRICE = {"input_per_1k": 0.5, "output_per_1k": 1.5}

_COMMON = """\
version: 1
owner: tests@example.com
kind: generate
input:
  text: {type: string, min_length: 1, max_length: 500}
"""

SPECS = {
    "draft-reply": _COMMON
    + f"""\
description: Draft a short reply to a customer message.
output:
  text: {{type: string}}
model: {{provider: {PROVIDER}, model: {MODEL}}}
prompt:
  system: You are a helpful support agent. Reply in one short sentence.
  user: "Customer: {{text}}"
generation: {{max_tokens: 12, temperature: 0, timeout_seconds: 60}}
""",
    "sentiment": _COMMON
    + f"""\
description: Tell the sentiment of a customer message.
output:
  sentiment: {{type: enum, values: [positive, negative, neutral]}}
model: {{provider: {PROVIDER}, model: {MODEL}}}
prompt:
  system: Classify the sentiment of the message. Answer in JSON.
  user: "{{text}}"
generation: {{max_tokens: 16, temperature: 0, timeout_seconds: 60}}
""",
    "demo-reply": _COMMON
    + """\
description: Draft a reply with the bundled demo model.
output:
  text: {type: string}
model: {provider: local, model: local-llm}
prompt: {user: "Customer: {text}"}
generation: {max_tokens: 8}
""",
}


def write_generate_project(directory: Path) -> Path:
    (directory / "tasks").mkdir(parents=True)
    (directory / "shipyard.yaml").write_text("name: llm-desk\ndefault_tenant: default\n")
    for name, text in SPECS.items():
        (directory / "tasks" / f"{name}.yaml").write_text(f"name: {name}\n{text}")
    return directory


def llm_container(
    project: Path, state_dir: Path, base_url: str | None, **settings: Any
) -> Container:
    """``base_url``: the server (or proxy) root; None configures no provider at all."""
    providers = {}
    if base_url is not None:
        providers[PROVIDER] = provider_settings(
            base_url + "/v1", max_retries=0, prices={MODEL: PRICE}
        )
    container = build(
        Settings(
            project_dir=project,
            data_dir=state_dir,
            database_url=f"sqlite:///{state_dir / 'shipyard.db'}",
            secret_key="test-secret-key-" + "x" * 32,
            providers=providers,
            provider_hosts=["127.0.0.1"],
            **settings,
        )
    )
    container.upgrade_database()
    container.ensure_default_tenant()
    return container
