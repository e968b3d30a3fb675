"""Clinician review and the reader study: a local web app (`rebalance review`, `rebalance
reader-study`), the decisions file it appends to, and the study's statistics."""
