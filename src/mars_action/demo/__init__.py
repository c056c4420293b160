"""``mars demo``: the whole method on a synthetic dataset, on a laptop CPU."""
