"""Training with Lightning: the config, the LightningModule, the optimizer, gradient
clipping and averaging, callbacks, checkpointing and resume, and ``train(cfg)``.
"""
