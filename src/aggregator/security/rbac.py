"""Roles and permissions: the one permission matrix every route is checked against.

=================  =====  ======  ========  ======
permission         admin  editor  operator  viewer
=================  =====  ======  ========  ======
catalog:read       yes    yes     yes       yes
connections:read   yes    yes     yes       yes
pipelines:read     yes    yes     yes       yes
data:read          yes    yes     yes       yes
runs:read          yes    yes     yes       yes
roles:read         yes    yes     yes       yes
apikeys:own        yes    yes     yes       yes
connections:check  yes    yes     yes       no
runs:trigger       yes    yes     yes       no
metrics:read       yes    yes     yes       no
webhooks:read      yes    yes     yes       no
alerts:read        yes    yes     yes       no
connections:write  yes    yes     no        no
pipelines:write    yes    yes     no        no
webhooks:write     yes    yes     no        no
alerts:write       yes    yes     no        no
users:read         yes    no      no        no
users:write        yes    no      no        no
apikeys:admin      yes    no      no        no
audit:read         yes    no      no        no
=================  =====  ======  ========  ======
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    """Something a route needs."""

    CATALOG_READ = "catalog:read"
    CONNECTIONS_READ = "connections:read"
    PIPELINES_READ = "pipelines:read"
    DATA_READ = "data:read"
    RUNS_READ = "runs:read"
    ROLES_READ = "roles:read"
    APIKEYS_OWN = "apikeys:own"
    CONNECTIONS_CHECK = "connections:check"
    RUNS_TRIGGER = "runs:trigger"
    METRICS_READ = "metrics:read"
    WEBHOOKS_READ = "webhooks:read"
    ALERTS_READ = "alerts:read"
    CONNECTIONS_WRITE = "connections:write"
    PIPELINES_WRITE = "pipelines:write"
    WEBHOOKS_WRITE = "webhooks:write"
    ALERTS_WRITE = "alerts:write"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    APIKEYS_ADMIN = "apikeys:admin"
    AUDIT_READ = "audit:read"


class Role(StrEnum):
    """The built-in roles, most powerful first."""

    ADMIN = "admin"
    EDITOR = "editor"
    OPERATOR = "operator"
    VIEWER = "viewer"


P = Permission
_VIEWER = frozenset(
    {
        P.CATALOG_READ, P.CONNECTIONS_READ, P.PIPELINES_READ, P.DATA_READ, P.RUNS_READ,
        P.ROLES_READ, P.APIKEYS_OWN,
    }
)  # fmt: skip
_OPERATOR = _VIEWER | {
    P.CONNECTIONS_CHECK, P.RUNS_TRIGGER, P.METRICS_READ, P.WEBHOOKS_READ, P.ALERTS_READ,
}  # fmt: skip
_EDITOR = _OPERATOR | {P.CONNECTIONS_WRITE, P.PIPELINES_WRITE, P.WEBHOOKS_WRITE, P.ALERTS_WRITE}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.EDITOR: _EDITOR,
    Role.OPERATOR: _OPERATOR,
    Role.VIEWER: _VIEWER,
}


def permissions_of(role: str) -> frozenset[Permission]:
    """Permissions of a role name (none for an unknown role)."""
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()


def matrix_markdown() -> str:
    """The permission matrix as a Markdown table (docs/security.md embeds it)."""
    roles = list(Role)
    lines = ["| permission | " + " | ".join(r.value for r in roles) + " |"]
    lines.append("|---" * (len(roles) + 1) + "|")
    for perm in Permission:
        marks = ["yes" if perm in ROLE_PERMISSIONS[r] else "no" for r in roles]
        lines.append(f"| `{perm.value}` | " + " | ".join(marks) + " |")
    return "\n".join(lines)
