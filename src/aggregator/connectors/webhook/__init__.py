"""The ``webhook`` source: events pushed to the API's ingest endpoints, read as Arrow batches."""

from aggregator.connectors.webhook.source import WebhookSource

__all__ = ["WebhookSource"]
