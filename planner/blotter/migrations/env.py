"""Alembic environment: runs migrations on the connection the store hands over in
``config.attributes["connection"]``, or on the URL in the config when run by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from planner.blotter.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    # Batch mode lets later migrations alter SQLite tables (copy-and-move).
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
