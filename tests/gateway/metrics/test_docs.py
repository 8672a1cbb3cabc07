"""docs/operations.md documents every metric family the daemon exposes, and its alert rules
use only those."""

from __future__ import annotations

import re
from pathlib import Path

from tests.gateway.metrics.test_metrics_run import FAMILIES

DOC = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_family_is_documented_and_the_alerts_use_them() -> None:
    metrics = section(DOC.read_text(), "Metrics")
    documented = set(re.findall(r"^\| `(tagrelay_[a-z_]+)` \|", metrics, re.M))
    families = {name.removesuffix("_total") for name in documented}
    assert families == FAMILIES
    # Counters carry _total, and only counters do.
    for row in re.findall(r"^\| `(tagrelay_[a-z_]+)` \| (\w+) \|", metrics, re.M):
        name, kind = row
        assert name.endswith("_total") == (kind == "counter"), name
    rules = metrics[metrics.index("```yaml") : metrics.index("```", metrics.index("```yaml") + 3)]
    used = set(re.findall(r"\b(tagrelay_[a-z_]+)", rules))
    assert used
    assert used <= documented
