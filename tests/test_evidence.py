"""Whole-article evidence: what the article said before a word reaches the encoder through its token type."""
import numpy as np
import pytest

from corefix.model.features import FAR, NEAR, WordFeatures, encode_words, repeat_evidence


def test_repeat_evidence_levels():
    words = "Mr . Putin met Ms . Lopez . Then Mr . Putin Mr . Putin congratulations".split()
    ev = repeat_evidence(words)
    assert ev[:3] == [0, 0, 0]  # a first mention is new
    i = words.index("Then") + 1  # the second "Mr . Putin", 6 and more words after the first
    assert ev[i] == 2 and ev[i + 2] == 2 + 4  # "Putin" continues the phrase "Mr . Putin"
    assert ev[i + 3] == 3 and ev[i + 5] == 3 + 4  # the adjacent copy: within NEAR, a repeated phrase
    far = ["Iran"] + ["word"] * (FAR + 1) + ["Iran"]
    assert repeat_evidence(far)[-1] == 1
    assert NEAR < FAR


def test_word_features_type_ids():
    words = ["Trump", "said", "Trump", "."]
    assert WordFeatures().type_ids(words) is None
    assert WordFeatures(case=True).type_ids(words) == [1, 0, 1, 0]
    both = WordFeatures(case=True, evidence=True)
    assert both.type_ids(words) == [1, 0, 1 + 2 * 3, 0] and both.n_types == 16
    assert max(both.type_ids(["A", "A"] * 10)) < both.n_types


def test_types_ride_on_every_subword_and_windows(tiny_encoder):
    from corefix.model.network import load_tokenizer

    tok = load_tokenizer(tiny_encoder)
    words = ["Okafor", "met", "Okafor"] * 40
    types = WordFeatures(True, True).type_ids(words)
    feats = encode_words(tok, words, max_length=32, stride=8, word_types=types)
    assert len(feats) > 3
    for f in feats:
        for wid, t in zip(f["word_ids"], f["token_type_ids"]):
            assert t == (0 if wid is None else types[wid])


def test_fit_token_types_starts_where_a_case_model_does(tiny_encoder):
    import torch

    from corefix.model.network import fit_token_types, new_model

    model = new_model(tiny_encoder)
    old = model.bert.embeddings.token_type_embeddings.weight.detach().clone()
    got = fit_token_types(model, WordFeatures(True, True))
    new = model.bert.embeddings.token_type_embeddings.weight
    assert got.evidence and new.shape[0] == 16 and model.config.type_vocab_size == 16
    assert torch.equal(new[5], old[1]) and torch.equal(new[4], old[0])
    assert fit_token_types(new_model(tiny_encoder), WordFeatures(case=True)) == WordFeatures(case=True)


def test_training_with_evidence_on_a_mixture_saves_reloads_and_predicts(tiny_encoder, tiny_data, tmp_path):
    """Two dataset folders (a mixture), one profile left out, evidence on: the card says so and the
    reloaded model gives every word one prediction."""
    import json
    import shutil

    from corefix.model.inference import Detector
    from corefix.model.pipeline import train_model
    from corefix.model.train import TrainConfig

    second = tmp_path / "second"
    shutil.copytree(tiny_data, second, ignore=shutil.ignore_patterns(".cache"))
    run = tmp_path / "run"
    cfg = TrainConfig(model=tiny_encoder, data_dir=[str(tiny_data), str(second)], run_dir=str(run), max_length=64,
                      stride=16, batch_size=8, learning_rate=5e-3, max_steps=6, eval_every=3, eval_docs=4,
                      log_every=2, evidence=True, exclude_profiles=["resolvers"], calibration_docs=4)
    train_model(cfg, progress=False)
    card = json.loads((run / "best" / "corefix.json").read_text())
    assert card["evidence"] and card["case_feature"] and set(card["simulator"]) == {str(tiny_data), str(second)}
    assert json.loads((run / "best" / "config.json").read_text())["type_vocab_size"] == 16
    detector = Detector.load(run / "best")
    text = "Mr. Okafor said Mr. Okafor met him . " * 30
    pred = detector.predict([text])[0]
    assert pred.probs.shape[0] == len(pred.offsets) and (pred.probs.sum(-1) > 0.99).all()


def test_windows_are_built_by_datasets_map_and_reused(tiny_data):
    from corefix.data.records import data_dirs, load_split
    from corefix.model.features import window_dataset
    from corefix.model.network import load_tokenizer

    tok = load_tokenizer(None)
    records = load_split(data_dirs(str(tiny_data)), "train")
    a = window_dataset(records, tok, 64, 16, WordFeatures(True, True))
    b = window_dataset(load_split(data_dirs(str(tiny_data)), "train"), tok, 64, 16, WordFeatures(True, True))
    assert a.cache_files and a.cache_files == b.cache_files  # the second build read the first one's Arrow file
    assert len(a) > len(records) and min(a["length"]) > 2 and "token_type_ids" in a.column_names


def test_leaving_out_a_profile(tiny_data, articles, tmp_path):
    from corefix.data.corpus import Article
    from corefix.data.dataset import build_dataset
    from corefix.data.records import data_dirs, load_split, read_records
    from corefix.data.settings import SimulatorSettings
    from corefix.data.simulate import Simulator

    mixed = Simulator(SimulatorSettings.from_dict({"mixture": {"seed": 0.5, "resolvers": 0.5}}))
    build_dataset([Article(f"{i}-{a}", t) for i in range(10) for a, t in articles], tmp_path, mixed, progress=False)
    dirs = data_dirs(str(tmp_path))
    all_records = read_records(dirs, "train")
    kept = read_records(dirs, "train", exclude_profiles=("seed",))
    assert 0 < len(kept) < len(all_records) and all(r["profile"] == "resolvers" for r in kept)
    assert len(load_split(dirs, "train", ("seed",))) == len(kept)
    with pytest.raises(FileNotFoundError, match="make_dataset"):
        read_records([tiny_data / "missing"], "train")
    assert np.array_equal([r["id"] for r in read_records([tiny_data, tiny_data], "train", limit=4)][:2],
                          [all_records[0]["id"]] * 2)  # a mixture is read in turn from each folder
