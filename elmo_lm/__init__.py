"""elmo_lm: train ELMo biLMs in PyTorch and read/write the original ELMo files."""

from elmo_lm.bilm import BiLM
from elmo_lm.characters import batch_to_ids
from elmo_lm.elmo import Elmo
from elmo_lm.options import BiLMOptions
from elmo_lm.scalar_mix import ScalarMix
from elmo_lm.token_cache import TokenCache
from elmo_lm.word_vectors import WordVectors

__all__ = ["BiLM", "BiLMOptions", "Elmo", "ScalarMix", "TokenCache", "WordVectors", "batch_to_ids"]
