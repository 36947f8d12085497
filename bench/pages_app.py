"""WSGI app for bench/pages.py: the real app, configured from the environment, plus a hello route.

`/bench/hello` lives on the same Flask app as the patient pages, so it goes through the same
WSGI stack, error handlers and teardown; it is the baseline the page req/s are divided by.
Only the benchmark serves this module (`gunicorn bench.pages_app:app`); production uses wsgi.py.
"""

from intake import create_app

app = create_app()


@app.get("/bench/hello")
def bench_hello() -> str:
    return "ok"
