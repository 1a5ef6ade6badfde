"""Developer tooling, not part of the runtime install (the ``dev`` extra): `tokenpool dev`, the
embedded control plane shared with the test suite, its throw-away PKI and the fake upstream."""
