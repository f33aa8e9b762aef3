"""Makes the word-input, tied and forward-only parity fixtures with the original TF trainer, and
checks that the original's code loads elmo_lm's exports of them. Run by hand, never by CI:

    PY=~/.cache/elmo-original-trainer/bin/python    # bash ../shared/tools/original-trainer/setup.sh
    $PY scripts/original_fixtures.py make  [--kinds word,tied,forward] [--steps 300]
    python scripts/original_fixtures.py export   # elmo_lm exports each fixture (project python)
    $PY scripts/original_fixtures.py check       # the original reads those exports
    $PY scripts/original_fixtures.py peer ...    # bench/bench_peer.py --kind word runs it
    $PY scripts/original_fixtures.py update      # the original's update rule and initial weights

``make`` trains the original (``bilm.training.train``, one GPU's code on the CPU, through the
trainer's shim) on a slice of a real corpus for each kind, writes its ``dump_weights`` file and
records its own activations, into ``tests/fixtures/original_<kind>/``:

- ``options.json``, ``dumped_weights.hdf5`` (``dump_weights``), ``vocab.txt``;
- ``dumped_weights_softmax_weights.hdf5``: the checkpoint's ``softmax/W`` and ``softmax/b`` (which
  ``dump_weights`` leaves out; for the tied model ``softmax/W`` is the embedding);
- ``activations.hdf5``: ``window/*`` the training graph in test mode (full softmax) on one
  (batch, unroll_steps) window from a zero state: its inputs, targets, token embeddings, top
  LSTM outputs per direction and mean loss per direction; and for the biLMs ``bilm/*`` the
  inference code (``BidirectionalLanguageModel(use_character_inputs=False,
  embedding_weight_file=dumped_weights.hdf5)``) on ``sentences.json``: ``lm_embeddings``
  (n_sentences, L + 1, T, 2P) and ``mask``;
- ``README.md`` and ``fixture.json`` (how it was made, its training losses).

``export`` (elmo_lm, no TensorFlow) loads each fixture with elmo_lm's reader, writes it back
with elmo_lm's writer (``BiLM.to_hdf5``, ``export_original``) into ``/tmp/elmo_fixture_exports``
and records elmo_lm's activations there. ``check`` loads those files with the original's code
(the inference code for biLMs; the training graph's variables for the forward-only LM, which
the inference code cannot build) and writes the largest difference from elmo_lm's activations
into each fixture's ``fixture.json`` (``writer_parity``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINER = Path(
    os.environ.get("ELMO_ORIGINAL_TRAINER", ROOT.parent / "shared/tools/original-trainer")
)
CORPUS = Path(os.environ.get("ELMO_FIXTURE_CORPUS", "/tmp/fortunes"))
EXPORTS = Path("/tmp/elmo_fixture_exports")
KINDS = ("word", "tied", "forward")
N_VOCAB = 300  # <S>, </S>, <UNK> and the 297 most frequent tokens
N_TRAIN_LINES = 6000
SENTENCES = [
    ["The", "man", "said", "it", "is", "not", "true", "."],
    ["You", "will", "have", "a", "good", "day", "."],
    ["It", "is", "a", "dog", "."],
]
LSTM = {"dim": 32, "projection_dim": 16, "n_layers": 2, "use_skip_connections": True}


def fixture_dir(kind: str) -> Path:
    return ROOT / "tests/fixtures" / f"original_{kind}"


def options_for(kind: str, n_vocab: int, steps: int, batch: int, unroll: int) -> dict:
    """The original trainer's options for each kind. The word models clip at 3; the forward LM
    reads characters and leaves out ``n_highway`` and both clips, which the original reads as no
    highway and no clipping."""
    options = {
        "bidirectional": kind != "forward",
        "dropout": 0.1,
        "lstm": dict(LSTM, cell_clip=3, proj_clip=3),
        "all_clip_norm_val": 10.0,
        "n_epochs": 1,
        "n_train_tokens": steps * batch * unroll,
        "batch_size": batch,
        "n_tokens_vocab": n_vocab,
        "unroll_steps": unroll,
        "n_negative_samples_batch": 64,
    }
    if kind == "tied":
        options["share_embedding_softmax"] = True
    if kind == "forward":
        options["lstm"] = dict(LSTM)  # no cell_clip, no proj_clip: no clipping
        options["char_cnn"] = {
            "activation": "relu",
            "embedding": {"dim": 4},
            "filters": [[1, 4], [2, 8], [3, 16]],
            "max_characters_per_token": 20,
            "n_characters": 261,
        }  # no n_highway: no highway layers
    return options


def _setup_original():
    sys.path.insert(0, str(TRAINER / "shim"))
    import tf1shim  # noqa: F401  must precede any tensorflow / bilm import

    sys.path.insert(0, str(TRAINER / "src"))


def _corpus_slice(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    vocab = [line.rstrip("\n") for line in (CORPUS / "vocab.txt").open(encoding="utf-8")]
    (out / "vocab.txt").write_text("\n".join(vocab[:N_VOCAB]) + "\n", encoding="utf-8")
    with (CORPUS / "train.txt").open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(N_TRAIN_LINES)]
    (out / "train.txt").write_text("".join(lines), encoding="utf-8")
    with (CORPUS / "valid.txt").open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(200)]
    (out / "valid.txt").write_text("".join(lines), encoding="utf-8")
    return {n: out / f"{n}.txt" for n in ("vocab", "train", "valid")}


def make(kind: str, steps: int, seed: int) -> None:
    """Trains the original for ``kind`` and writes its fixture."""
    _setup_original()
    import h5py
    import numpy as np
    import tensorflow as tf  # tensorflow.compat.v1 through the shim
    from bilm.data import BidirectionalLMDataset, LMDataset
    from bilm.training import dump_weights, load_vocab, train

    work = Path(f"/tmp/elmo_fixture_work/{kind}")
    files = _corpus_slice(work / "data")
    batch, unroll = 16, 10
    char_inputs = kind == "forward"
    options = options_for(kind, N_VOCAB, steps, batch, unroll)
    max_chars = options["char_cnn"]["max_characters_per_token"] if char_inputs else None
    vocab = load_vocab(str(files["vocab"]), max_chars)
    random.seed(seed)
    np.random.seed(seed)
    dataset = LMDataset if kind == "forward" else BidirectionalLMDataset
    data = dataset(str(files["train"]), vocab, test=False, shuffle_on_load=True)
    save = work / "ckpt"
    save.mkdir(parents=True, exist_ok=True)
    log = (work / "train.log").open("w")
    tf.reset_default_graph()
    tf.set_random_seed(seed)
    with contextlib.redirect_stdout(log):
        train(options, data, 1, str(save), str(save))
    out = fixture_dir(kind)
    out.mkdir(parents=True, exist_ok=True)
    tf.reset_default_graph()
    with contextlib.redirect_stdout(log):
        dump_weights(str(save), str(out / "dumped_weights.hdf5"))
    (out / "vocab.txt").write_text(files["vocab"].read_text(encoding="utf-8"), encoding="utf-8")
    saved = json.loads((save / "options.json").read_text())
    (out / "options.json").write_text(json.dumps(saved, indent=1) + "\n")
    (out / "sentences.json").write_text(json.dumps(SENTENCES) + "\n")
    log.close()
    losses = [
        float(line.split("=")[1])
        for line in (work / "train.log").open()
        if line.startswith("Batch ") and "train_perplexity=" in line
    ]
    window = _window(files["valid"], vocab, batch, unroll, kind)
    tf.reset_default_graph()
    with h5py.File(out / "activations.hdf5", "w") as f:
        variables = _test_graph(saved, str(save), window, f, kind)
    with h5py.File(out / "dumped_weights_softmax_weights.hdf5", "w") as f:
        f.create_dataset("softmax/W", data=variables["W"].astype("float32"))
        f.create_dataset("softmax/b", data=variables["b"].astype("float32"))
    if kind != "forward":
        tf.reset_default_graph()
        with h5py.File(out / "activations.hdf5", "a") as f:
            emb, mask = _inference(
                out / "options.json",
                out / "dumped_weights.hdf5",
                out / "dumped_weights.hdf5",
                out / "vocab.txt",
            )
            f.create_dataset("bilm/lm_embeddings", data=emb)
            f.create_dataset("bilm/mask", data=mask)
    record = {
        "kind": kind,
        "made_by": "scripts/original_fixtures.py make (bilm-tf 7cffee2b through the trainer's "
        f"shim, {tf.__version__})",
        "corpus": f"{N_TRAIN_LINES} lines of the fortunes corpus, vocabulary of {N_VOCAB}",
        "steps": steps,
        "batch_size": batch,
        "unroll_steps": unroll,
        "seed": seed,
        "train_perplexity_log": losses[-5:],
    }
    (out / "fixture.json").write_text(json.dumps(record, indent=1) + "\n")
    write_readme(kind)


DESCRIPTIONS = {
    "word": "a word-input biLM (no char_cnn: an embedding of n_tokens_vocab x projection_dim)",
    "tied": "a word-input biLM whose softmax is its embedding (share_embedding_softmax)",
    "forward": "a forward LM alone (bidirectional: false) on characters, its options without "
    "n_highway and clips (the original reads them as no highway, no clipping)",
}


def write_readme(kind: str) -> None:
    """The fixture's ``README.md``: what it is, how it was made, what was checked (fills the
    training log's perplexities into ``fixture.json`` where they are missing)."""
    out = fixture_dir(kind)
    record = json.loads((out / "fixture.json").read_text())
    log = Path(f"/tmp/elmo_fixture_work/{kind}/train.log")
    if not record.get("train_perplexity_log") and log.is_file():
        record["train_perplexity_log"] = [
            [int(line.split()[1].rstrip(",")), float(line.split("=")[1])]
            for line in log.open()
            if line.startswith("Batch ") and "train_perplexity=" in line
        ]
        (out / "fixture.json").write_text(json.dumps(record, indent=1) + "\n")
    parity = record.get("writer_parity", {}).get("max_abs_diff", {})
    lines = [
        f"# original_{kind}: {DESCRIPTIONS[kind]}",
        "",
        f"Made by `{record['made_by']}` from {record['corpus']}: {record['steps']} steps of "
        f"{record['batch_size']} x {record['unroll_steps']}, seed {record['seed']} (training "
        f"perplexity by step: {record.get('train_perplexity_log')}).",
        "",
        "- `options.json`, `dumped_weights.hdf5` (`dump_weights`), `vocab.txt`, "
        "`dumped_weights_softmax_weights.hdf5` (the checkpoint's softmax, which `dump_weights` "
        "leaves out);",
        "- `activations.hdf5`: `window/*` the training graph in test mode on one window of "
        "held-out text (inputs, targets, token embeddings, top outputs, mean losses)"
        + (", `bilm/*` the inference code on `sentences.json`;" if kind != "forward" else ";"),
        "- `update.hdf5`, `update_sampled.hdf5` (`scripts/original_fixtures.py update`): three "
        "steps of the original's `train()` optimizer on that window from these weights, dropout "
        "0, the full softmax or the sampled one (with the negatives it was given): each step's "
        "loss and gradient norm, and every weight after them; `init_stats.json`: the spread of "
        "each variable as the original's initialisers draw it for these options.",
        "",
        "Checked by tests/model/test_original_kinds.py (elmo_lm's reader within 1e-5, no "
        "TensorFlow). elmo_lm's writer, read back by the original's code "
        "(`scripts/original_fixtures.py check`): largest difference "
        + (", ".join(f"{k} {v:.1e}" for k, v in parity.items()) or "not checked yet")
        + ".",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def _window(valid: Path, vocab, batch: int, unroll: int, kind: str) -> dict:
    """One (batch, unroll) window of held-out text as the original's test data makes it."""
    from bilm.data import BidirectionalLMDataset, LMDataset

    dataset = LMDataset if kind == "forward" else BidirectionalLMDataset
    data = dataset(str(valid), vocab, test=True, shuffle_on_load=False)
    return next(data.iter_batches(batch, unroll))


def _test_graph(options: dict, save: str, window: dict, f, kind: str) -> dict:
    """The training graph in test mode on one window from a zero state, into ``f``."""
    import numpy as np
    import tensorflow as tf
    from bilm.training import LanguageModel, _get_feed_dict_from_X

    options = dict(
        options,
        batch_size=window["next_token_id"].shape[0],
        unroll_steps=window["next_token_id"].shape[1],
    )
    with tf.Session() as sess:
        with tf.variable_scope("lm"):
            model = LanguageModel(options, False)
        tf.train.Saver().restore(sess, tf.train.latest_checkpoint(save))
        char_inputs = "char_cnn" in options
        feed = _get_feed_dict_from_X(
            window, 0, options["batch_size"], model, char_inputs, options["bidirectional"]
        )
        outputs = tf.get_collection("lstm_output_embeddings")
        embeddings = [model.embedding] + ([model.embedding_reverse] if kind != "forward" else [])
        fetched = sess.run(
            [embeddings, outputs, model.individual_losses, model.softmax_W, model.softmax_b],
            feed_dict=feed,
        )
    for key, value in window.items():
        if value is not None:
            f.create_dataset(f"window/{key}", data=value)
    for d, emb in enumerate(fetched[0]):
        f.create_dataset(f"window/embedding_{d}", data=emb)
    for d, steps in enumerate(fetched[1]):
        f.create_dataset(f"window/top_{d}", data=np.stack(steps, axis=1))
    f.create_dataset("window/losses", data=np.array(fetched[2], dtype=np.float64))
    return {"W": fetched[3], "b": fetched[4]}


def _inference(options_file, weight_file, embedding_file, vocab_file):
    """The original inference code's representations of ``SENTENCES`` (one batch, zero state)."""
    import tensorflow as tf
    from bilm.data import TokenBatcher
    from bilm.model import BidirectionalLanguageModel

    ids = TokenBatcher(str(vocab_file)).batch_sentences(SENTENCES)
    placeholder = tf.placeholder("int32", shape=(None, None))
    with contextlib.redirect_stdout(sys.stderr):
        model = BidirectionalLanguageModel(
            str(options_file),
            str(weight_file),
            use_character_inputs=False,
            embedding_weight_file=str(embedding_file),
        )
        ops = model(placeholder)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        emb, mask = sess.run([ops["lm_embeddings"], ops["mask"]], feed_dict={placeholder: ids})
    return emb, mask


def check(kind: str) -> float:
    """The original's code on elmo_lm's export of ``kind``: the largest difference from
    elmo_lm's activations there, written into the fixture's ``fixture.json``."""
    _setup_original()
    import h5py
    import numpy as np
    import tensorflow as tf

    export = EXPORTS / kind
    with h5py.File(export / "ours.hdf5", "r") as f:
        ours = {k: f[k][...] for k in ("top_0", "embedding_0", "losses")}
        ours_bilm = f["lm_embeddings"][...] if "lm_embeddings" in f else None
    with h5py.File(fixture_dir(kind) / "activations.hdf5", "r") as f:
        window = {
            k: f["window"][k][...]
            for k in f["window"]
            if k
            in (
                "token_ids",
                "token_ids_reverse",
                "tokens_characters",
                "tokens_characters_reverse",
                "next_token_id",
                "next_token_id_reverse",
            )
        }
    options = json.loads((export / "options.json").read_text())
    diffs = {}
    if ours_bilm is not None:
        tf.reset_default_graph()
        emb, _ = _inference(
            export / "options.json",
            export / "weights.hdf5",
            export / "weights.hdf5",
            export / "vocab.txt",
        )
        diffs["inference_lm_embeddings"] = float(np.abs(emb - ours_bilm).max())
    tf.reset_default_graph()
    theirs = _graph_from_files(options, export, window)
    diffs["training_graph_top"] = float(np.abs(theirs["top_0"] - ours["top_0"]).max())
    diffs["training_graph_embedding"] = float(
        np.abs(theirs["embedding_0"] - ours["embedding_0"]).max()
    )
    diffs["training_graph_losses"] = float(np.abs(theirs["losses"] - ours["losses"]).max())
    record_path = fixture_dir(kind) / "fixture.json"
    record = json.loads(record_path.read_text())
    record["writer_parity"] = {
        "checked_by": "scripts/original_fixtures.py check: the original's code on elmo_lm's "
        "export (BiLM.to_hdf5, save_softmax) of this fixture's weights moved by noise "
        "(scripts/fixture_exports.py), against elmo_lm's activations",
        "max_abs_diff": diffs,
    }
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    write_readme(kind)
    return max(diffs.values())


def _graph_from_files(options: dict, export: Path, window: dict) -> dict:
    """The training graph (test mode) with its variables read from an exported weights file and
    softmax file (the names ``dump_weights`` gives them), on ``window``."""
    import h5py
    import numpy as np
    import tensorflow as tf
    from bilm.training import LanguageModel, _get_feed_dict_from_X

    options = dict(
        options,
        batch_size=window["next_token_id"].shape[0],
        unroll_steps=window["next_token_id"].shape[1],
    )
    options["char_cnn"] = (
        dict(options["char_cnn"], n_characters=261) if "char_cnn" in options else None
    )
    if options["char_cnn"] is None:
        del options["char_cnn"]
    bidirectional = options.get("bidirectional", False)
    with tf.Session() as sess:
        with tf.variable_scope("lm"):
            model = LanguageModel(options, False)
        sess.run(tf.global_variables_initializer())
        with (
            h5py.File(export / "weights.hdf5", "r") as w,
            h5py.File(export / "weights_softmax_weights.hdf5", "r") as s,
        ):
            for v in tf.trainable_variables():
                name = _dump_name(v.name)
                if name.startswith("softmax/"):
                    value = s[name][...]
                else:
                    value = w[name][...]
                    if name == "char_embed":
                        value = value[: v.shape[0]]
                sess.run(v.assign(value.reshape(v.shape)))
        feed = _get_feed_dict_from_X(
            window, 0, options["batch_size"], model, "char_cnn" in options, bidirectional
        )
        outputs = tf.get_collection("lstm_output_embeddings")
        emb, top, losses = sess.run(
            [model.embedding, outputs[0], model.individual_losses], feed_dict=feed
        )
    return {
        "embedding_0": emb,
        "top_0": np.stack(top, axis=1),
        "losses": np.array(losses, dtype=np.float64),
    }


UPDATE_STEPS = 3


def _log_uniform_negatives(rng, n_sampled: int, n_classes: int, targets):
    """TF's ``log_uniform_candidate_sampler(unique=True)`` in numpy: distinct ids drawn until
    there are ``n_sampled``, and the expected counts of ``targets`` and of them
    (``-expm1(num_tries * log1p(-p))``)."""
    import numpy as np

    seen, order, tries = set(), [], 0
    while len(order) < n_sampled:
        tries += 1
        value = int(np.exp(rng.random() * np.log(n_classes + 1.0))) - 1
        if value not in seen:
            seen.add(value)
            order.append(value)
    sampled = np.array(order, dtype=np.int64)

    def expected(ids):
        p = np.log((ids + 2.0) / (ids + 1.0)) / np.log(n_classes + 1.0)
        return -np.expm1(tries * np.log1p(-p)) if tries != n_sampled else p * n_sampled

    return sampled, expected(np.asarray(targets, dtype=np.float64)), expected(sampled)


def update(kind: str, sampled: bool = False) -> None:
    """The original's update rule on the fixture's own weights: ``UPDATE_STEPS`` training steps
    of ``train()``'s optimizer (Adagrad 0.2 from accumulators of 1.0, the gradient of
    ``loss * unroll_steps`` through ``average_gradients`` and ``clip_grads``), dropout 0, on the
    fixture's window, the LSTM state carried from a zero start. The full softmax (nothing
    random), or with ``sampled`` the original's sampled softmax with negatives drawn here
    (seeded, TF's law: ``_log_uniform_negatives``) and fed to its ``sampled_softmax_loss`` as
    ``sampled_values``, recorded so that elmo_lm's side can use the same. Writes
    ``update.hdf5`` (``update_sampled.hdf5``): the loss and the gradient's global norm of each
    step, the negatives, and every variable after the last, under ``dump_weights``' names."""
    _setup_original()
    import bilm.training
    import h5py
    import numpy as np
    import tensorflow as tf
    from bilm.training import LanguageModel, _get_feed_dict_from_X, average_gradients, clip_grads

    out = fixture_dir(kind)
    fed = []  # per direction: placeholders of the negatives and expected counts

    def sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, num_classes, **kw):
        values = (
            tf.placeholder(tf.int64, [num_sampled]),
            tf.placeholder(tf.float32, [None, 1]),
            tf.placeholder(tf.float32, [num_sampled]),
        )
        fed.append((values, num_sampled, num_classes))
        return original_loss(
            weights, biases, labels, inputs, num_sampled, num_classes, sampled_values=values, **kw
        )

    original_loss = tf.nn.sampled_softmax_loss
    bilm.training.tf.nn.sampled_softmax_loss = sampled_softmax_loss
    with h5py.File(out / "activations.hdf5", "r") as f:
        window = {k: f["window"][k][...] for k in f["window"]}
        window = {
            k: window.get(k)
            for k in (
                "token_ids",
                "token_ids_reverse",
                "next_token_id",
                "next_token_id_reverse",
                "tokens_characters",
                "tokens_characters_reverse",
            )
        }
    saved = json.loads((out / "options.json").read_text())
    batch, unroll = window["next_token_id"].shape
    options = dict(
        saved, dropout=0.0, sample_softmax=sampled, batch_size=batch, unroll_steps=unroll
    )
    if "char_cnn" in options:
        options["char_cnn"] = dict(options["char_cnn"], n_characters=261)
    bidirectional = options.get("bidirectional", False)
    tf.reset_default_graph()
    with tf.Session() as sess:
        global_step = tf.get_variable(
            "global_step", [], initializer=tf.constant_initializer(0), trainable=False
        )
        opt = tf.train.AdagradOptimizer(learning_rate=0.2, initial_accumulator_value=1.0)
        with tf.variable_scope("lm"):
            model = LanguageModel(options, True)
            loss = model.total_loss
            grads = opt.compute_gradients(
                loss * options["unroll_steps"],
                aggregation_method=tf.AggregationMethod.EXPERIMENTAL_TREE,
            )
        grads = average_gradients([grads], batch, options)
        norm = tf.global_norm([g for g, _ in grads if g is not None])
        grads, _ = clip_grads(grads, options, False, global_step)
        train_op = opt.apply_gradients(grads, global_step=global_step)
        sess.run(tf.global_variables_initializer())
        variables = tf.trainable_variables()
        with (
            h5py.File(out / "dumped_weights.hdf5", "r") as w,
            h5py.File(out / "dumped_weights_softmax_weights.hdf5", "r") as sm,
        ):
            for v in variables:
                name = _dump_name(v.name)
                value = (sm if name.startswith("softmax/") else w)[name][...]
                if name == "char_embed":
                    value = value[: v.shape[0]]
                sess.run(v.assign(value.reshape(v.shape)))
        char_inputs = "char_cnn" in options
        inputs = _get_feed_dict_from_X(window, 0, batch, model, char_inputs, bidirectional)
        state = sess.run(model.init_lstm_state, feed_dict=inputs)  # zeros
        losses, norms, negatives = [], [], []
        rng = np.random.default_rng(7)
        targets = [window["next_token_id"], window.get("next_token_id_reverse")]
        for _ in range(UPDATE_STEPS):
            feed = dict(zip(model.init_lstm_state, state))
            feed.update(inputs)
            for (values, n_sampled, n_classes), t in zip(fed, targets):
                ids, true_q, sampled_q = _log_uniform_negatives(rng, n_sampled, n_classes, t)
                feed.update(zip(values, (ids, true_q.reshape(-1, 1), sampled_q)))
                negatives.append((ids, true_q.reshape(-1), sampled_q))
            _, step_loss, step_norm, state = sess.run(
                [train_op, loss, norm, model.final_lstm_state], feed_dict=feed
            )
            losses.append(step_loss)
            norms.append(step_norm)
        after = dict(zip((_dump_name(v.name) for v in variables), sess.run(variables)))
    bilm.training.tf.nn.sampled_softmax_loss = original_loss
    path = out / ("update_sampled.hdf5" if sampled else "update.hdf5")
    with h5py.File(path, "w") as f:
        for i, arrays in enumerate(negatives):  # in order: step by step, forward then backward
            for key, value in zip(("sampled", "true_expected", "sampled_expected"), arrays):
                f.create_dataset(f"negatives/{i}/{key}", data=value)
        f.create_dataset("losses", data=np.array(losses, dtype=np.float64))
        f.create_dataset("grad_norms", data=np.array(norms, dtype=np.float64))
        for name, value in after.items():
            f.create_dataset(f"after/{name}", data=value.astype("float32"))
    print(f"{kind}: {path} losses {losses} norms {norms}")


def record_init(kind: str) -> None:
    """The original's initial weights for the fixture's options (its initialisers, before any
    training): per variable, under ``dump_weights``' names, its shape, std and largest absolute
    value, into ``init_stats.json``."""
    _setup_original()
    import numpy as np
    import tensorflow as tf
    from bilm.training import LanguageModel

    out = fixture_dir(kind)
    options = json.loads((out / "options.json").read_text())
    if "char_cnn" in options:
        options["char_cnn"] = dict(options["char_cnn"], n_characters=261)
    tf.reset_default_graph()
    tf.set_random_seed(1)
    stats = {}
    with tf.Session() as sess:
        with tf.variable_scope("lm"):
            LanguageModel(options, True)
        sess.run(tf.global_variables_initializer())
        for v in tf.trainable_variables():
            x = sess.run(v)
            stats[_dump_name(v.name)] = {
                "shape": list(x.shape),
                "std": float(x.std()),
                "absmax": float(np.abs(x).max()),
            }
    (out / "init_stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(f"{kind}: {out / 'init_stats.json'}")


def _dump_name(tf_name: str) -> str:
    """``dump_weights``'s name of a variable (``bilm/training.py`` ``_get_outname``)."""
    import re

    out = re.sub(":0$", "", tf_name).lstrip("lm/")
    out = re.sub("/rnn/", "/RNN/", out)
    out = re.sub("/multi_rnn_cell/", "/MultiRNNCell/", out)
    out = re.sub("/cell_", "/Cell", out)
    out = re.sub("/lstm_cell/", "/LSTMCell/", out)
    if "/RNN/" in out:
        out = (
            re.sub("projection/kernel", "W_P_0", out)
            if "projection" in out
            else re.sub("/bias", "/B", re.sub("/kernel", "/W_0", out))
        )
    return out


def export_ours() -> None:
    """elmo_lm's side (project python): each fixture read and written back, and elmo_lm's
    activations of the same inputs (``scripts/fixture_exports.py`` does the work)."""
    sys.path.insert(0, str(ROOT))
    from scripts.fixture_exports import export_fixture

    for kind in KINDS:
        if (fixture_dir(kind) / "dumped_weights.hdf5").is_file():
            export_fixture(fixture_dir(kind), EXPORTS / kind)
            print(f"{kind}: exported to {EXPORTS / kind}")


def peer(args) -> None:
    """The original trainer on a word-input biLM of a model config's shape, as
    ``train_peer.py`` runs its character biLM (its training and ``test()`` procedure, its
    JSON line on stdout): what ``bench/bench_peer.py --kind word`` compares against."""
    _setup_original()
    sys.path.insert(0, str(TRAINER))
    import numpy as np
    import tensorflow as tf
    import train_peer  # the trainer's driver: its observed train() and test()
    from bilm.data import BidirectionalLMDataset
    from bilm.training import load_vocab

    shape = json.loads(args.shape_json)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    vocab = load_vocab(args.vocab, None)
    options = {
        "bidirectional": True,
        "dropout": shape["dropout"],
        "lstm": shape["lstm"],
        "all_clip_norm_val": 10.0,
        "n_epochs": 1,
        "n_train_tokens": args.steps * args.batch_size * args.unroll_steps,
        "batch_size": args.batch_size,
        "n_tokens_vocab": vocab.size,
        "unroll_steps": args.unroll_steps,
        "n_negative_samples_batch": args.n_negative_samples,
        "share_embedding_softmax": shape.get("share_embedding_softmax", False),
        "sample_softmax": shape.get("sample_softmax", True),
    }
    tee = train_peer._Tee(str(out / "train.log"))
    with contextlib.redirect_stdout(tee):
        data = train_peer._TimedData(
            BidirectionalLMDataset(args.train, vocab, test=False, shuffle_on_load=True)
        )
        tf.reset_default_graph()
        tf.set_random_seed(args.seed)
        import time

        t0 = time.time()
        rec = train_peer._run_original_train(options, data, str(out))
        t_end = time.time()
    tee.close()
    train_s = t_end - (data.t_first or t0)
    ns = argparse.Namespace(
        out=str(out), valid=args.valid, test_batch_size=args.test_batch_size, no_dir_ppl=False
    )
    ev = train_peer._evaluate(ns, vocab, "test")
    # test() again from the state training ended in (row i from training row i mod batch), not
    # its zero state: train_peer.py's --diag_warm_test, which bench_peer.py reports beside it.
    warm = train_peer._evaluate(ns, vocab, "test_warm", warm_state=rec["final_state"])
    result = {
        "steps": data.n_batches,
        "train_seconds": round(train_s, 3),
        "tokens_per_s": round(data.n_batches * args.batch_size * args.unroll_steps / train_s, 2),
        **ev,
        "warm": {k: warm[k] for k in ("test_ppl", "test_ppl_forward", "test_ppl_backward")},
    }
    sys.__stdout__.write(json.dumps(result) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("make", "export", "check", "peer", "readme", "update"))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    for name in ("train", "valid", "vocab", "out", "shape_json"):  # peer
        parser.add_argument(f"--{name}")
    for name, default in (
        ("batch_size", 32),
        ("unroll_steps", 20),
        ("n_negative_samples", 8192),
        ("test_batch_size", 256),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    if args.action == "export":
        export_ours()
        return
    if args.action == "peer":
        peer(args)
        return
    if args.action == "readme":
        for kind in kinds:
            write_readme(kind)
        return
    for kind in kinds:
        if args.action == "make":
            make(kind, args.steps, args.seed)
            print(f"{kind}: {fixture_dir(kind)}")
        elif args.action == "update":
            update(kind)
            update(kind, sampled=True)
            record_init(kind)
        else:
            print(f"{kind}: largest difference {check(kind):.2e}")


if __name__ == "__main__":
    main()
