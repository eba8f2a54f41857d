"""Every setting is documented: the README's configuration table (or docs/oidc.md for the
OIDC block) names its environment variable."""

from __future__ import annotations

from pathlib import Path

from shipyard.settings import Settings

ROOT = Path(__file__).parent.parent


def test_every_setting_has_a_documented_environment_variable() -> None:
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "oidc.md").read_text()
    missing = [
        f"SHIPYARD_{name.upper()}"
        for name in Settings.model_fields
        if f"`SHIPYARD_{name.upper()}`" not in docs
    ]
    assert missing == []
