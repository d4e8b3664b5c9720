"""Alembic migrations of the operational store (``referral_sync.store.tables``).

``referral-sync`` upgrades the store to ``head`` when it opens it; ``Store.migrate`` is the
entry point. To add a migration after changing ``store/tables.py``, write an ``alembic.ini``
holding ``[alembic]`` / ``script_location = referral_sync:migrations`` and run::

    alembic -x url=sqlite:///referral-sync.db revision --autogenerate -m "what changed"

``tests/store/test_migrations.py`` fails until the migrations match the tables again.
"""
