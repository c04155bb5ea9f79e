"""Use cases behind the routes (shared with the CLI); handlers stay thin."""
