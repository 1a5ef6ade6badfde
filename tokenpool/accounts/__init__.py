"""Upstream accounts: adding them (OAuth sign-in), used by the CLI and the console."""
