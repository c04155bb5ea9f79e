"""Pipeline specs: YAML files describing sources, streams, destination and engine options."""
