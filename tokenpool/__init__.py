"""tokenpool: a Kubernetes-native, multi-user token pool for Augment and OpenAI-compatible upstreams."""

__version__ = "0.1.0"
