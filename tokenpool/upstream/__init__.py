"""What both the operator and the proxy know about upstream answers: which texts are the
upstream's own account notices, what an HTTP error means for the account, and the cheap probe
the operator's scheduled checks send (docs/augment-protocol.md, docs/proxy.md "Health")."""
