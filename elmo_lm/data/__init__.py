"""Corpora and batches: ``corpus`` (reading sentence-per-line files, their sizes and OOV rate),
``vocabulary``, ``sharding`` (which sentences each DDP rank and data-loader worker reads),
``packing`` (sentences into truncated-BPTT windows), ``streams`` (the datasets) and
``datamodule`` (the LightningDataModule).
"""
