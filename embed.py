"""Embed a sentence-per-line file into HDF5: ``python embed.py input=SENTENCES.txt
output=OUT.hdf5 options=OPTIONS.json weights=WEIGHTS.hdf5`` (or ``ckpt=CKPT``).

The same command is installed as ``elmo-embed``; the work lives in ``elmo_lm.embed_file``.
"""

from elmo_lm.embed_file import main

if __name__ == "__main__":
    main()
