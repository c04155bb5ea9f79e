"""Connector packages: scaffolding, and Singer/Airbyte plugins in their own venvs."""
