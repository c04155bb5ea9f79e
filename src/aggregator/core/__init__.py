"""Contracts shared by every part of the platform: types, streams, messages, errors."""
