"""The console: an admin REST API, a web dashboard and a self-service page over the custom
resources (docs/console.md). It reads the pool from a watch-backed in-memory mirror and writes
through the Kubernetes API only: the API server stays the one source of truth."""
