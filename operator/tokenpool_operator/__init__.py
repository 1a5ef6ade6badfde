"""The tokenpool operator: Kopf handlers over pure reconcile functions (see docs/operator.md)."""
