"""The version of taskfleet-client (also in client/pyproject.toml)."""

__version__ = "0.1.0"
