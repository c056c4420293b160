"""Annotations, clip sampling, transforms, datasets, and the synthetic motion dataset."""
