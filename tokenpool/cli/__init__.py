"""The `tokenpool` command: runs the operator or the proxy, and the admin commands
(users, tokens, allocations, migration from the D1 system) over the Kubernetes API."""
