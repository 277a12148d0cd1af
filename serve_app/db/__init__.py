"""limner's metadata database: models, engines and migrations.

SQLite by default (one file, no set-up), PostgreSQL at scale; the same models and the same Alembic
revisions serve both.
"""

from serve_app.db.engine import READ_ONLY, is_sqlite, make_engine, make_session_factory, to_async_url
from serve_app.db.migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    migrate,
)
from serve_app.db.models import (
    Base,
    Image,
    Job,
    JobEvent,
    JobSource,
    JobStatus,
    Overlay,
    OverlayVersion,
    RemoteCall,
    Subject,
    Theme,
    ThemeVersion,
    UTCDateTime,
    utcnow,
)

__all__ = [
    "MIGRATIONS_DIR",
    "READ_ONLY",
    "Base",
    "Image",
    "Job",
    "JobEvent",
    "JobSource",
    "JobStatus",
    "Overlay",
    "OverlayVersion",
    "RemoteCall",
    "Subject",
    "Theme",
    "ThemeVersion",
    "UTCDateTime",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "is_sqlite",
    "make_engine",
    "make_session_factory",
    "migrate",
    "to_async_url",
    "utcnow",
]
