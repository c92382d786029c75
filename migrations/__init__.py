"""Alembic migrations: the only way taskfleet's tables are created or changed."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

HERE = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (``taskfleet migrate``, the Procfile's release)."""
    command.upgrade(alembic_config(database_url), revision)


@cache
def head() -> str:
    """The newest migration of this code: where ``taskfleet migrate`` takes a database."""
    revision = ScriptDirectory(str(HERE)).get_current_head()
    assert revision is not None, "no migrations"
    return revision


@cache
def history() -> frozenset[str]:
    """Every migration this code knows."""
    return frozenset(script.revision for script in ScriptDirectory(str(HERE)).walk_revisions())
