"""``python -m shoprec`` = the ``shoprec`` command."""

from .cli import app

app(prog_name="shoprec")
