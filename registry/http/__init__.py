"""The HTTP surface of the registry."""
