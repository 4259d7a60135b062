"""Alembic migrations of the blotter's store (run by :func:`planner.blotter.store.open_store`;
no ``alembic.ini`` needed). To add one: ``alembic -c planner/blotter/migrations/alembic.ini
revision -m "what changes"`` from the repository root, then edit the new file in
``versions/`` and the ORM classes in :mod:`planner.blotter.tables` to match."""
