"""elmo_lm: train ELMo biLMs in PyTorch and read/write the original ELMo files."""

from elmo_lm.embedding.elmo import Elmo
from elmo_lm.embedding.token_cache import TokenCache
from elmo_lm.embedding.word_vectors import WordVectors
from elmo_lm.formats.characters import batch_to_ids
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.model.bilm import BiLM
from elmo_lm.model.scalar_mix import ScalarMix

__all__ = ["BiLM", "BiLMOptions", "Elmo", "ScalarMix", "TokenCache", "WordVectors", "batch_to_ids"]
