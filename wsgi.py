"""gunicorn and `flask --app wsgi` entry point."""
from guideapp import create_app

app = create_app()
