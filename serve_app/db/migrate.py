"""Run Alembic migrations from code: no ``alembic.ini``, any working directory.

Alembic's commands are synchronous; they run inside ``AsyncConnection.run_sync`` on the async engine from
:func:`serve_app.db.engine.make_engine`, so the same drivers (aiosqlite, asyncpg) and connection settings
serve both the application and its migrations.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection

from serve_app.db.engine import make_engine, to_async_url

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "downgrade", "head_revision", "migrate"]

#: The Alembic script directory shipped inside the package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL | None = None) -> Config:
    """Build an Alembic :class:`~alembic.config.Config` pointing at limner's migrations.

    Args:
        url: The database URL (stored as ``sqlalchemy.url`` for the command-line path); optional.

    Returns:
        A config usable with :mod:`alembic.command`.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        rendered = to_async_url(url).render_as_string(hide_password=False)
        # ConfigParser interpolation would eat a literal "%" (percent-encoded passwords).
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest revision id in the shipped migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions found under {MIGRATIONS_DIR}")
    return head


async def _run(url: str | URL, action: str, revision: str) -> None:
    config = alembic_config(url)
    engine = make_engine(url)

    def _command(connection: Connection) -> None:
        config.attributes["connection"] = connection
        if action == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(_command)
    finally:
        await engine.dispose()


async def migrate(url: str | URL, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (the newest by default).

    Args:
        url: ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://...`` (plain ``sqlite://`` and
            ``postgresql://`` get the async driver).
        revision: Target revision.
    """
    await _run(url, "upgrade", revision)


async def downgrade(url: str | URL, revision: str = "base") -> None:
    """Downgrade the database at ``url`` to ``revision`` (empty by default).

    Args:
        url: As for :func:`migrate`.
        revision: Target revision; ``"base"`` drops every table the migrations created.
    """
    await _run(url, "downgrade", revision)


async def current_revision(url: str | URL) -> str | None:
    """Return the revision the database at ``url`` is at, or ``None`` when it has none.

    Args:
        url: As for :func:`migrate`.
    """
    engine = make_engine(url)

    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current)
    finally:
        await engine.dispose()
