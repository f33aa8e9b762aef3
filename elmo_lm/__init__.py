"""elmo_lm: train ELMo biLMs in PyTorch and read/write the original ELMo files."""

from elmo_lm.bilm import BiLM
from elmo_lm.characters import batch_to_ids
from elmo_lm.options import BiLMOptions

__all__ = ["BiLM", "BiLMOptions", "batch_to_ids"]
