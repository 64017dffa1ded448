"""The document index: the owner's shared folders, read, cut into passages, embedded and
searchable by meaning (docs/index.md)."""
