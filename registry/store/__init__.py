"""Storage backends: all the registry's SQL, one subpackage per database.

``postgres/`` holds the PostgreSQL backend (psycopg 3 and psycopg_pool),
imported only when a ``postgresql://`` location is used; the SQLite backend
still lives in ``registry.storage`` and ``registry.usage``. ``errors`` holds
the kinds of `registry.StorageError` that a caller may act on.
"""
