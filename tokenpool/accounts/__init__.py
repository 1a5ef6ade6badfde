"""Upstream accounts: adding them by their OAuth sign-in (the CLI and the console)."""
