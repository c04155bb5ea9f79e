"""Engines that execute pipelines: the local (embedded) engine for now."""
