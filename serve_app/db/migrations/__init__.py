"""Alembic environment for limner's metadata database (configured in code by ``serve_app.db.migrate``)."""
