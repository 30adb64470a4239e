"""
PostgreSQL (the ``postgres`` extra): the shared inbox, leases and send budget of the cluster mode (``DATABASE_URL``).

Imported only when ``DATABASE_URL`` is set; the embedded mode never loads psycopg.
"""
