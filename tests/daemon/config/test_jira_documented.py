"""Every key of the ``jira`` section is in the README's configuration table."""

from __future__ import annotations

from pathlib import Path

from daemon.config import JiraSettings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_jira_key_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| key | default | meaning |") :]
    table = table[: table.index("\n\n")]
    missing = [name for name in JiraSettings.model_fields if f"jira.{name}`" not in table]
    assert missing == [], f"not in README's configuration table: {missing}"
