"""What is on disk, with no nn.Module and no Lightning: ``options.json``, the character
ids, the weights ``.hdf5``, atomic writes, published-model downloads and the checkpoint reader.
"""
