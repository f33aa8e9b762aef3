"""Corpora and batches: reading sentence-per-line files, the vocabulary, the truncated-BPTT
streams sharded over DDP ranks and workers, and the LightningDataModule.
"""
