"""WSGI entry point: `gunicorn wsgi:app` or `flask --app wsgi run`."""

from intake import create_app

app = create_app()
