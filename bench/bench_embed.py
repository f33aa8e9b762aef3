"""Speed of the embedding command (``elmo-embed``) on the published "small" shape, on CPU.

Usage: python bench/bench_embed.py [--sentences 1000] [--vocab-size 20000] [--threads N]

Random weights (``BiLM(BiLMOptions(...))``); a file of Zipf-distributed sentences is embedded
into HDF5 with ``embed_file``, as the command does, with and without a token cache holding the
``--vocab-size`` most frequent words. Timings exclude loading the model and building the cache
(the cache's build time is printed on its own).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # elmo_lm, installed or not
from common import ordinary_sentences, small_options, table, zipf_words  # noqa: E402

from elmo_lm.commands.embed import embed_file  # noqa: E402
from elmo_lm.embedding.elmo import Elmo  # noqa: E402
from elmo_lm.embedding.token_cache import TokenCache  # noqa: E402
from elmo_lm.formats.characters import batch_to_ids  # noqa: E402
from elmo_lm.model.bilm import BiLM  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--min-len", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--vocab-size", type=int, default=20000)
    parser.add_argument("--modes", default="all,top")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bilm = BiLM(small_options()).eval()
    sentences = ordinary_sentences(args.sentences, args.min_len, args.max_len)
    n_tokens = sum(len(s) for s in sentences)
    with tempfile.TemporaryDirectory() as tmp:
        corpus, vocab, out = Path(tmp, "corpus.txt"), Path(tmp, "vocab.txt"), Path(tmp, "out.hdf5")
        corpus.write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf-8")
        vocab.write_text("\n".join(zipf_words()[0][: args.vocab_size]) + "\n", encoding="utf-8")
        t = time.perf_counter()
        cache = TokenCache.build(bilm, vocab)
        build_s = time.perf_counter() - t
        ids = batch_to_ids(sentences).view(-1, bilm.options.char_cnn.max_characters_per_token)
        ids = ids[(ids > 0).any(-1)]
        hit_rate = float((cache.rows(ids) >= 0).float().mean())
        embed_file(Elmo(bilm), corpus, out, batch_size=args.batch_size, progress=False)  # warm-up
        rows = []
        for mode in args.modes.split(","):
            for name, elmo in (("no", Elmo(bilm)), ("yes", Elmo(bilm, token_cache=cache))):
                t = time.perf_counter()
                embed_file(elmo, corpus, out, mode=mode, batch_size=args.batch_size, progress=False)
                seconds = time.perf_counter() - t
                rows.append(
                    {
                        "mode": mode,
                        "token cache": name,
                        "sentences/s": f"{len(sentences) / seconds:.1f}",
                        "tokens/s": f"{n_tokens / seconds:.0f}",
                        "seconds": f"{seconds:.2f}",
                    }
                )
    print(
        f"small ELMo (2 x 1024 cells, projection 128, 2048 filters, 1 highway), CPU, "
        f"{torch.get_num_threads()} threads; {len(sentences)} sentences, {n_tokens} tokens, "
        f"batch size {args.batch_size}"
    )
    print(
        f"token cache: {args.vocab_size} words, built in {build_s:.1f} s, "
        f"covers {hit_rate:.1%} of the tokens"
    )
    print(table(rows, ["mode", "token cache", "sentences/s", "tokens/s", "seconds"]))


if __name__ == "__main__":
    main()
