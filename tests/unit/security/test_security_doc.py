"""docs/security.md shows the permission matrix the code enforces."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.security.rbac import matrix_markdown

pytestmark = pytest.mark.unit


def test_security_doc_embeds_the_current_matrix() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "security.md").read_text()
    assert matrix_markdown() in doc
