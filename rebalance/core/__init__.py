"""What every stage shares: params (schema and loader), paths, manifest, image IO, atomic writes,
errors, hashing and markdown tables."""
