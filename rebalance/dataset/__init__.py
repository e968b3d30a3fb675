"""The real images: the built-in demo, ingestion of a user's source, the split and the balancing plan."""
