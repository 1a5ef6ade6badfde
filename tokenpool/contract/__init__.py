"""What the operator, the proxy and the console share, defined once.

* :mod:`tokenpool.contract.compiled`: the resources' names and the compiled route objects the
  operator writes and the proxy serves (docs/architecture.md, "The compiled-object contract").
* :mod:`tokenpool.contract.status_fields`: the ``status.usage`` and ``status.health`` documents
  the proxy writes and the operator, the CLI and the console read.
"""
