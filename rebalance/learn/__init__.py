"""The classifier, its test-set metrics and the variants x metrics report."""
