"""Pipelines: validated with the spec loader, versioned on every change, resolved for runs.

A source or the destination may reference a stored connection with ``connection: NAME``;
the reference is what is stored, and the connection's decrypted config is substituted only
in memory, when validating and when running. Inline configs must not carry secrets.
Unlike the CLI, ``${VAR}`` is not interpolated: API users must not read the server's
environment.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import yaml
from sqlalchemy import delete as sa_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from aggregator.api.errors import ApiError
from aggregator.api.schemas import PipelineWrite
from aggregator.api.services import connections
from aggregator.api.services import secrets as sec
from aggregator.connectors import registry
from aggregator.core.errors import ConfigError, SpecError
from aggregator.metadata.control_models import Pipeline, PipelineVersion
from aggregator.pipeline import yaml_loader
from aggregator.pipeline.spec import PipelineSpec, parse_pipeline
from aggregator.security import audit
from aggregator.security.crypto import SecretBox

SOURCE = "pipeline"


def _load(body: PipelineWrite) -> tuple[yaml_loader.LoadedYaml, str, str]:
    if body.yaml is not None:
        try:
            # _LineLoader subclasses yaml.SafeLoader: no arbitrary objects.
            raw = yaml.load(body.yaml, Loader=yaml_loader._LineLoader)  # noqa: S506  # nosec B506
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{SOURCE}:{mark.line + 1}" if mark is not None else SOURCE
            problem = getattr(exc, "problem", "syntax error")
            raise SpecError(SOURCE, [f"{where}: YAML syntax: {problem}"]) from None
        lines: dict[yaml_loader.Location, int] = {}
        data = yaml_loader._strip(raw, (), lines)
        return yaml_loader.LoadedYaml(data, lines, SOURCE), body.yaml, "yaml"
    text = json.dumps(body.spec, indent=2, sort_keys=True)
    return yaml_loader.LoadedYaml(copy.deepcopy(body.spec), {}, SOURCE), text, "json"


def _resolve(
    s: Session, box: SecretBox | None, workspace_id: str, data: Any, check_inline: bool
) -> Any:
    """Substitute connection references (decrypted when ``box`` is given)."""
    if not isinstance(data, dict):
        return data
    out = copy.deepcopy(data)
    parts: list[tuple[dict[str, Any], str]] = [
        (src, "source") for src in out.get("sources") or [] if isinstance(src, dict)
    ]
    if isinstance(out.get("destination"), dict):
        parts.append((out["destination"], "destination"))
    for part, kind in parts:
        name = part.pop("connection", None)
        if name is None:
            if check_inline:
                _refuse_inline_secrets(part, kind)
            continue
        if "config" in part or "type" in part:
            raise ApiError(422, "invalid_spec", "use either `connection` or `type`/`config`")
        row = connections.by_name(s, workspace_id, str(name))
        if row.kind != kind:
            raise ApiError(422, "invalid_spec", f"connection {name!r} is not a {kind}")
        part["type"] = row.connector
        part["config"] = connections.decrypted_config(box, row) if box else row.config
    return out


def _refuse_inline_secrets(part: dict[str, Any], kind: str) -> None:
    config, type_name = part.get("config"), part.get("type", "duckdb")
    if not isinstance(config, dict) or not isinstance(type_name, str):
        return
    try:
        model = registry.get(type_name, kind).cls.config_model
    except ConfigError:
        return  # parse_pipeline reports the unknown connector
    if sec.MASK in json.dumps(sec.redact(config, model)):
        raise ApiError(
            422,
            "inline_secret",
            f"a {kind} config holds a secret: store it in a connection and "
            "reference it with `connection: NAME`",
        )


def validate(
    s: Session, box: SecretBox, workspace_id: str, body: PipelineWrite
) -> tuple[PipelineSpec, dict[str, Any], str, str]:
    """``(spec, stored form, source text, format)``; errors name the line and field."""
    doc, text, fmt = _load(body)
    stored = doc.data
    doc.data = _resolve(s, box, workspace_id, doc.data, check_inline=True)
    spec = parse_pipeline(doc)
    if not isinstance(stored, dict):
        raise ApiError(422, "invalid_spec", "a pipeline is a mapping")
    return spec, stored, text, fmt


def runnable_spec(s: Session, box: SecretBox, row: Pipeline) -> PipelineSpec:
    """The current spec with connection secrets substituted (in memory only)."""
    data = _resolve(s, box, row.workspace_id, row.spec, check_inline=False)
    return parse_pipeline(yaml_loader.LoadedYaml(data, {}, SOURCE))


def get(s: Session, workspace_id: str, pipeline_id: str) -> Pipeline:
    """A pipeline of the workspace, or 404."""
    row = s.get(Pipeline, pipeline_id)
    if row is None or row.workspace_id != workspace_id:
        raise ApiError(404, "not_found", "no such pipeline")
    return row


def _version(row: Pipeline, change: str, text: str, fmt: str, author: str) -> PipelineVersion:
    return PipelineVersion(
        pipeline_id=row.id,
        version=row.current_version,
        spec=row.spec,
        source_text=text,
        source_format=fmt,
        change=change,
        author_id=author,
        created_at=row.updated_at,
    )


def create(
    s: Session, box: SecretBox, ctx: audit.AuditContext, user_id: str, body: PipelineWrite
) -> Pipeline:
    """Validate and store a new pipeline at version 1."""
    workspace_id = ctx.workspace_id or ""
    spec, stored, text, fmt = validate(s, box, workspace_id, body)
    if s.scalar(select(Pipeline.id).where(Pipeline.name == spec.name)):
        raise ApiError(409, "conflict", f"a pipeline named {spec.name!r} exists")
    now = datetime.now(UTC)
    row = Pipeline(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id,
        name=spec.name,
        current_version=1,
        spec=stored,
        created_by=user_id,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    s.flush()
    s.add(_version(row, "created", text, fmt, user_id))
    audit.append(
        s, ctx, "pipeline.created", object_type="pipeline", object_id=row.id,
        details={"name": spec.name, "version": 1},
    )  # fmt: skip
    s.commit()
    return row


def update(
    s: Session,
    box: SecretBox,
    ctx: audit.AuditContext,
    user_id: str,
    row: Pipeline,
    body: PipelineWrite,
) -> Pipeline:
    """Store a new version (the name cannot change: runs and state are keyed by it)."""
    spec, stored, text, fmt = validate(s, box, row.workspace_id, body)
    if spec.name != row.name:
        raise ApiError(422, "invalid_spec", "a pipeline cannot be renamed; create a new one")
    row.current_version += 1
    row.spec = stored
    row.updated_at = datetime.now(UTC)
    s.add(_version(row, "updated", text, fmt, user_id))
    audit.append(
        s, ctx, "pipeline.updated", object_type="pipeline", object_id=row.id,
        details={"name": row.name, "version": row.current_version},
    )  # fmt: skip
    s.commit()
    return row


def delete(s: Session, ctx: audit.AuditContext, row: Pipeline) -> None:
    """Remove a pipeline and its versions (the audit log keeps the record)."""
    audit.append(
        s, ctx, "pipeline.deleted", object_type="pipeline", object_id=row.id,
        details={"name": row.name, "version": row.current_version},
    )  # fmt: skip
    s.execute(sa_delete(PipelineVersion).where(PipelineVersion.pipeline_id == row.id))
    s.delete(row)
    s.commit()


def versions(s: Session, row: Pipeline) -> list[PipelineVersion]:
    """Every version, oldest first."""
    query = (
        select(PipelineVersion)
        .where(PipelineVersion.pipeline_id == row.id)
        .order_by(PipelineVersion.version)
    )
    return list(s.scalars(query))
