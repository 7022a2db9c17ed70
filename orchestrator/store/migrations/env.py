"""Alembic's entry point for the run store's migrations (run by `store.upgrade_store`).

The store's own engine connection is passed in `config.attributes["connection"]`; the version is
kept in the store's own table, so a database shared with other alembic users is not confused.
"""

from alembic import context

from orchestrator.store import VERSION_TABLE, Base

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters tables by copying them; batch mode does that
)
with context.begin_transaction():
    context.run_migrations()
