"""``python -m tokenpool.cli``: the same as the ``tokenpool`` console script."""

from tokenpool.cli.main import app

app()
