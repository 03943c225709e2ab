"""Storage adapters: the ports of :mod:`altpay_core.ports`, implemented.

Each adapter is a module with a store class; import the one you use (the
others' dependencies stay optional):

* :mod:`altpay_core.adapters.memory` -- ``MemoryStore()``: in the process,
  the reference implementation (tests, notebooks).
* :mod:`altpay_core.adapters.sqlite` -- ``SqliteStore(path)``: the embedded
  default, a file (or ``":memory:"``) through the standard library's
  ``sqlite3``.
* :mod:`altpay_core.adapters.postgres` -- ``PostgresStore(dsn)``: PostgreSQL
  through psycopg 3 (``pip install 'altpay-core[postgres]'``).

All of them pass the same contract suite, :mod:`altpay_core.testing.contracts`.
"""
