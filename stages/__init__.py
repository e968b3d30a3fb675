"""rebalance: turn an imbalanced image dataset into balanced, versioned, measured releases.

Stage entry points (`python -m stages.<name>`) are thin; the work lives in the small modules
beside them (params, manifest, images, atomic, plan, demo, lesions, synth/, model, registry).
"""
