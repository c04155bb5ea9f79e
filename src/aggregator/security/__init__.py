"""Identity, authorization, secrets and audit for the control plane (see docs/security.md)."""

from aggregator.security.rbac import ROLE_PERMISSIONS, Permission, Role

__all__ = ["ROLE_PERMISSIONS", "Permission", "Role"]
