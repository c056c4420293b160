"""Losses (MARS, MERS), optimizers and schedules, the training loop."""
