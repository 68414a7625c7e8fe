"""Data: the synthetic generator, the loaders, cleaning and the data contract."""
