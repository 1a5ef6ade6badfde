"""The project's one Kubernetes API client: :mod:`.credentials` finds the cluster like kubectl,
:mod:`.client` talks to it (async, retries, list/watch)."""
