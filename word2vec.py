"""Train static word vectors on a corpus: ``python word2vec.py data=FILE_OR_GLOB
out=vectors.txt [architecture=skipgram|cbow] [dim=100] ...`` (needs ``pip install -e ".[word2vec]"``).

The same command is installed as ``elmo-word2vec``; the work lives in ``elmo_lm.commands.word2vec``.
"""

from elmo_lm.commands.word2vec import main

if __name__ == "__main__":
    main()
