"""The REST API (FastAPI under ``/api/v1``); build it with :func:`create_app`."""

from aggregator.api.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]
