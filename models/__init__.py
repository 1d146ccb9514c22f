"""Ready-made models (the MLPs, CNN and Shakespeare transformer arrive with later issues)."""
