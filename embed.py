"""Embed a sentence-per-line file into HDF5: ``python embed.py input=SENTENCES.txt
output=OUT.hdf5 options=OPTIONS.json weights=WEIGHTS.hdf5`` (or ``ckpt=CKPT``).

The same command is installed as ``elmo-embed``; the work lives in ``elmo_lm.commands.embed``.
"""

from elmo_lm.commands.embed import main

if __name__ == "__main__":
    main()
