"""A FastAPI booking service (rooms in SQLite, payments over HTTP): ``plain.py`` as written
without prodture, ``app.py`` ported to it; ``payments.py`` is the payment service it calls."""
