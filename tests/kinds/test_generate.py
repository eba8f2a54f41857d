"""Kind generate against the real llama.cpp server: free text, structured output, streaming,
the worst-case estimate, and the spec rules of the kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from shipyard.bootstrap import Container
from shipyard.errors import LLMNotConfigured
from shipyard.governance.budgets import Metered
from shipyard.kinds.base import KindResult
from shipyard.kinds.generate import GenerateRunner
from shipyard.providers.llm import TextDelta
from shipyard.spec.model import TaskSpec
from shipyard.storage.repositories import RunFilter
from tests.conftest import new_tenant
from tests.llm_project import PRICE, PROVIDER, llm_container, write_generate_project
from tests.providers.llm.conftest import MODEL, llama_url  # noqa: F401  # fixture
from tests.providers.llm.fault_proxy import FaultProxy

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def served(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:  # noqa: F811
    proxy = FaultProxy(llama_url)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def container(served: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    project = write_generate_project(tmp_path_factory.mktemp("gen-project"))
    found = llm_container(project, tmp_path_factory.mktemp("gen-state"), served.url)
    yield found
    found.close()


def runner(container: Container, task: str) -> GenerateRunner:
    found = container.runtime.runner(task)
    assert isinstance(found, GenerateRunner)
    return found


def test_free_text_run_has_text_usage_cost_and_the_serving_model(container: Container) -> None:
    result = runner(container, "draft-reply").run({"text": "Where is my parcel?"})
    assert isinstance(result.output["text"], str)
    assert result.output["text"]
    assert result.usage is not None
    assert result.usage["prompt_tokens"] > 0
    assert 0 < result.usage["completion_tokens"] <= 12
    expected = (
        result.usage["prompt_tokens"] * PRICE["input_per_1k"]
        + result.usage["completion_tokens"] * PRICE["output_per_1k"]
    ) / 1000
    assert result.cost == pytest.approx(expected)
    assert result.model_name == f"{PROVIDER}/{MODEL}"


def test_structured_run_sends_the_schema_and_returns_a_valid_object(
    container: Container, served: FaultProxy
) -> None:
    before = served.count
    result = runner(container, "sentiment").run({"text": "I love this, thank you so much!"})
    assert result.output["sentiment"] in {"positive", "negative", "neutral"}
    assert set(result.output) == {"sentiment"}
    sent = served.requests[before].body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["max_tokens"] == 16


def test_stream_yields_deltas_then_the_result(container: Container) -> None:
    events = list(runner(container, "draft-reply").stream({"text": "Thanks for the help!"}))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert deltas
    assert isinstance(events[-1], KindResult)
    result = events[-1]
    assert result.output["text"] == "".join(d.text for d in deltas)
    assert result.usage is not None
    assert result.usage["completion_tokens"] > 0
    assert result.cost is not None
    assert result.cost > 0


def test_stream_stops_at_the_character_cap(served: FaultProxy, tmp_path: Path) -> None:
    project = write_generate_project(tmp_path / "project")
    capped = llm_container(project, tmp_path / "state", served.url, max_stream_chars=3)
    try:
        events = list(runner(capped, "draft-reply").stream({"text": "Tell me a long story"}))
    finally:
        capped.close()
    result = events[-1]
    assert isinstance(result, KindResult)
    assert len(result.output["text"]) <= 3
    assert "truncated" in result.flags
    assert result.usage is not None
    assert result.cost is not None


def test_estimate_is_the_worst_case(container: Container) -> None:
    found = runner(container, "draft-reply")
    assert isinstance(found, Metered)
    estimate = found.estimate({"text": "x" * 400})
    assert estimate.tokens >= 100 + 12
    assert estimate.cost is not None
    assert estimate.cost >= 12 * PRICE["output_per_1k"] / 1000


def test_disconnecting_mid_stream_stores_a_failed_run(container: Container) -> None:
    keys = new_tenant(container)
    principal = container.access.authenticate(keys.tokens["caller"])
    events = container.runs.stream(principal, "draft-reply", {"text": "Hello there"})
    first = next(events)
    assert isinstance(first, TextDelta)
    events.close()  # what the API does when the client goes away  # type: ignore[attr-defined]
    page = container.runs.list(container.access.authenticate(keys.tokens["admin"]), RunFilter())
    (stored,) = page.runs
    assert (stored.status, stored.error) == ("failed", "client disconnected")
    # The provider may bill for what it generated: the worst case counts against budgets.
    assert "usage_estimated" in stored.flags
    assert stored.prompt_tokens is not None
    assert stored.prompt_tokens > 0
    assert stored.cost is not None


def test_demo_model_is_opt_in(tmp_path: Path) -> None:
    project = write_generate_project(tmp_path / "project")
    bare = llm_container(project, tmp_path / "state", None)
    try:
        with pytest.raises(LLMNotConfigured, match="SHIPYARD_LOCAL_LLM=true") as caught:
            runner(bare, "demo-reply").run({"text": "hi"})
        assert caught.value.status == 503
        with pytest.raises(LLMNotConfigured, match="SHIPYARD_PROVIDERS"):
            runner(bare, "draft-reply").run({"text": "hi"})
    finally:
        bare.close()
    assert bare._llm is None or bare._llm.providers == {}


BASE_SPEC = {
    "name": "gen-task",
    "version": 1,
    "description": "d",
    "owner": "o",
    "kind": "generate",
    "input": {"text": {"type": "string"}},
    "output": {"text": {"type": "string"}},
    "model": {"provider": "p", "model": "m"},
}


def test_generate_needs_a_prompt() -> None:
    with pytest.raises(ValidationError, match="kind generate needs a 'prompt'"):
        TaskSpec.model_validate(BASE_SPEC)
    spec = TaskSpec.model_validate({**BASE_SPEC, "prompt": {"user": "{text}"}})
    assert spec.kind == "generate"


def test_generate_refuses_citation_outputs() -> None:
    output = {"refs": {"type": "citations"}}
    with pytest.raises(ValidationError, match="citations only in an output named"):
        TaskSpec.model_validate({**BASE_SPEC, "output": output, "prompt": {"user": "{text}"}})
    cited = {"text": {"type": "string"}, "citations": {"type": "citations"}}
    with pytest.raises(ValidationError, match="can cite only retrieved passages"):
        TaskSpec.model_validate({**BASE_SPEC, "output": cited, "prompt": {"user": "{text}"}})


def test_demo_model_runs_when_opted_in_and_says_so(tmp_path: Path) -> None:
    project = write_generate_project(tmp_path / "project")
    demo = llm_container(project, tmp_path / "state", None, local_llm=True)
    try:
        result = runner(demo, "demo-reply").run({"text": "Say hello."})
        assert isinstance(result.output.get("text"), str)
        assert result.usage is not None
        assert result.usage["completion_tokens"] > 0
        assert result.model_name is not None
        assert "demo quality" in result.model_name
    finally:
        demo.close()
