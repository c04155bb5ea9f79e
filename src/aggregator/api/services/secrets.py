"""Which config values are secret, redaction, and scrubbing secrets out of messages."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

MASK = "**********"
_SECRET_NAME = re.compile(
    r"(pass(word|phrase)?|secret|token|api[_-]?key|private[_-]?key|credentials?|dsn)$", re.I
)


def _mask_names(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: MASK if _SECRET_NAME.search(str(k)) and v not in (None, "") else _mask_names(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_mask_names(v) for v in node]
    return node


def redact(config: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """The config with secrets masked: ``SecretStr`` fields of the model and secret-like names."""
    try:
        dumped = model.model_validate(config).model_dump(mode="json", exclude_unset=True)
    except ValidationError:
        dumped = config
    merged = _overlay(config, dumped)
    masked: dict[str, Any] = _mask_names(merged)
    return masked


def _overlay(raw: Any, dumped: Any) -> Any:
    """Keep the raw shape, masking wherever the model's dump masked a value."""
    if isinstance(raw, dict) and isinstance(dumped, dict):
        return {k: _overlay(v, dumped.get(k, v)) for k, v in raw.items()}
    if isinstance(raw, list) and isinstance(dumped, list) and len(raw) == len(dumped):
        return [_overlay(a, b) for a, b in zip(raw, dumped, strict=True)]
    return MASK if dumped == MASK and raw != MASK else raw


def keep_masked(new: Any, old: Any) -> Any:
    """Replace values sent back as the mask by the stored value at the same place."""
    if new == MASK:
        return old
    if isinstance(new, dict):
        prior = old if isinstance(old, dict) else {}
        return {k: keep_masked(v, prior.get(k)) for k, v in new.items()}
    if isinstance(new, list):
        prior_list = old if isinstance(old, list) else []
        return [
            keep_masked(v, prior_list[i] if i < len(prior_list) else None)
            for i, v in enumerate(new)
        ]
    return new


def secret_values(config: dict[str, Any], redacted: dict[str, Any]) -> list[str]:
    """The clear values that ``redacted`` masks (to scrub them from messages)."""
    found: list[str] = []

    def walk(raw: Any, red: Any) -> None:
        if red == MASK and raw not in (None, "", MASK):
            found.append(str(raw))
        elif isinstance(raw, dict) and isinstance(red, dict):
            for k, v in raw.items():
                walk(v, red.get(k))
        elif isinstance(raw, list) and isinstance(red, list):
            for a, b in zip(raw, red, strict=False):
                walk(a, b)

    walk(config, redacted)
    return found


def scrub(message: str, secrets: list[str]) -> str:
    """``message`` with every secret value replaced by the mask."""
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 3:
            message = message.replace(value, MASK)
    return message
