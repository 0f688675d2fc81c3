"""Alembic environment for the contlearn ledger.

contlearn runs migrations itself (``contlearn db upgrade``, or on opening a workspace) and passes
an open connection in ``config.attributes["connection"]``. Run by hand (``alembic.ini`` at the
repository root points here), ``alembic`` takes the URL from ``sqlalchemy.url`` or
``CONTLEARN_DB``. The wheel carries this folder as ``contlearn/ledger/migrations``.
"""

import os

from alembic import context
from sqlalchemy import engine_from_config, pool

from contlearn.ledger.schema import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    section = config.get_section(config.config_ini_section) or {}
    section.setdefault("sqlalchemy.url", os.environ.get("CONTLEARN_DB", ""))
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(conn)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or os.environ.get("CONTLEARN_DB"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
