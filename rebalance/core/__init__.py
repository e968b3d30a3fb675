"""What every stage shares: paths, manifest, image IO, atomic writes, errors, hashing, devices
and markdown tables (params: rebalance/config)."""
