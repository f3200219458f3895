import json

import pytest

from corefix.data.records import read_jsonl
from corefix.model.decode import DecodePolicy
from corefix.model.features import encode_words, length_grouped_order
from corefix.model.inference import Detector, WordPredictions, predict_words
from corefix.model.network import load_trained, new_model
from corefix.model.options import InferenceOptions
from corefix.model.train import TrainConfig, configure_model, train


def _log(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_moves_the_loss_and_saves_a_complete_model(tiny_model):
    best, run = tiny_model
    losses = [r["loss"] for r in _log(run) if "loss" in r]
    assert len(losses) >= 4
    assert losses[-1] < losses[0] * 0.8
    for f in ("model.safetensors", "config.json", "corefix.json", "tokenizer_config.json"):
        assert (best / f).is_file(), f
    card = json.loads((best / "corefix.json").read_text())
    assert card["max_length"] == 64 and "simulator" in card and card["simulator"]["seed"] == 13
    assert not list(best.glob("*.bin")) and not list(best.glob("*.pt"))


def test_reloaded_model_predicts_the_same_tags(tiny_model, tiny_data):
    best, _ = tiny_model
    texts = [r["text"] for r in read_jsonl(tiny_data / "validation.jsonl")][:4] or \
        [r["text"] for r in read_jsonl(tiny_data / "train.jsonl")][:4]
    a = Detector.load(best, InferenceOptions(batch_size=3))
    assert a.card.case_feature and a.card.max_length == 64
    policy = a.policy
    a = a.predict(texts)
    b = Detector.load(best, InferenceOptions(batch_size=8)).predict(texts)
    assert [p.tags(policy) for p in a] == [p.tags(policy) for p in b]
    for x, y in zip(a, b):
        assert abs(x.probs - y.probs).max() < 1e-4


def test_resume_continues_from_the_saved_step(tiny_encoder, tiny_data, tmp_path):
    base = dict(model=tiny_encoder, data_dir=str(tiny_data), run_dir=str(tmp_path), max_length=64, stride=16,
                batch_size=8, learning_rate=1e-3, eval_every=4, eval_docs=3, log_every=1)
    train(TrainConfig(max_steps=4, **base), progress=False)
    progress = json.loads((tmp_path / "last" / "progress.json").read_text())
    assert progress["step"] == 4
    train(TrainConfig(max_steps=7, **base), progress=False)
    steps = [r["step"] for r in _log(tmp_path) if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6, 7], steps  # no step repeated or skipped
    assert json.loads((tmp_path / "last" / "progress.json").read_text())["step"] == 7


def test_windows_cover_every_word_of_a_long_article(tiny_model):
    best, _ = tiny_model
    model, tok, _ = load_trained(best)
    words = ["word"] * 700 + ["Mr", ".", "Okafor"] * 100
    feats = encode_words(tok, words, max_length=64, stride=16, tags=["O"] * len(words))
    assert len(feats) > 10
    covered = {w for f in feats for w in f["word_ids"] if w is not None}
    assert covered == set(range(len(words)))
    preds = predict_words(model, tok, [" ".join(words)], max_length=64, stride=16)
    assert len(preds[0].tags(DecodePolicy())) == len(words)


def test_length_grouped_order_is_a_reproducible_permutation():
    lengths = [5, 100, 7, 64, 3, 3, 80, 12] * 20
    a = length_grouped_order(lengths, 4, seed=1)
    assert sorted(a) == list(range(len(lengths))) and a == length_grouped_order(lengths, 4, seed=1)
    assert a != length_grouped_order(lengths, 4, seed=2)


def test_default_encoder_loads_offline():
    model = new_model(None)
    assert model.config.num_labels == 5 and model.config.id2label[1] == "B-SUB"
    assert sum(p.numel() for p in model.parameters()) > 20_000_000


def test_config_overrides_and_unknown_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("batch_size: 4\nlearning_rate: 1.0e-3\n")
    cfg = TrainConfig.from_yaml(f, ["max_steps=9", "run_dir=x"])
    assert cfg.batch_size == 4 and cfg.max_steps == 9 and cfg.run_dir == "x"
    with pytest.raises(ValueError):
        TrainConfig.from_yaml(f, ["nonsense=1"])



def test_segmented_prediction_covers_every_word_and_agrees(tiny_model):
    best, _ = tiny_model
    model, tok, _ = load_trained(best)
    text = " ".join(f"Mr. Okafor{i % 7} said he met them , the firm said ." for i in range(120))
    whole = predict_words(model, tok, [text, "short one ."], max_length=64, stride=16, segment_words=10**9)[0]
    parts = predict_words(model, tok, [text, "short one ."], max_length=64, stride=16, segment_words=150)[0]
    assert (parts.probs.sum(-1) > 0.99).all(), "a word got no prediction"
    policy = DecodePolicy()
    agree = sum(a == b for a, b in zip(whole.tags(policy), parts.tags(policy))) / len(whole.probs)
    assert agree > 0.97, agree


def test_configure_model_sets_dropout_and_freezes_word_embeddings(tiny_encoder):
    import torch

    model = new_model(tiny_encoder)
    configure_model(model, TrainConfig(dropout=0.0, freeze_word_embeddings=True))
    drops = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops and all(p == 0.0 for p in drops)
    assert model.config.hidden_dropout_prob == 0.0
    assert not model.get_input_embeddings().weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if "word_embeddings" not in n)
    model.train()  # no dropout: two training-mode passes agree exactly
    ids = torch.tensor([[101, 2000, 2001, 102]])
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    with pytest.raises(ValueError, match="dropout"):
        configure_model(new_model(tiny_encoder), TrainConfig(dropout=1.5))
    untouched = new_model(tiny_encoder)
    configure_model(untouched, TrainConfig())
    assert untouched.get_input_embeddings().weight.requires_grad
    assert any(m.p > 0 for m in untouched.modules() if isinstance(m, torch.nn.Dropout))


PROBS = [
    [0.9, 0.0, 0.0, 0.1, 0.0],    # inserted 0.10
    [0.6, 0.0, 0.0, 0.4, 0.0],    # inserted 0.40: arg-max says O
    [0.2, 0.0, 0.0, 0.0, 0.8],    # inserted 0.80, as the inside of a span
    [0.75, 0.0, 0.0, 0.25, 0.0],  # inserted 0.25
]


def test_best_threshold_picks_the_lowest_perfect_threshold():
    import numpy as np

    from corefix.model.calibrate import profile_score
    from corefix.model.metrics import best_threshold

    pred = WordPredictions([(0, 1), (2, 3), (4, 5), (6, 7)], np.array(PROBS, dtype=np.float32))
    gold = [["O", "B-DUP", "I-DUP", "O"]]
    independent = DecodePolicy("independent")
    assert pred.tags(independent) == ["O", "O", "I-DUP", "O"]  # no threshold: arg-max
    assert best_threshold([pred], independent, profile_score(gold, "f1", {})) == (0.3, 1.0)
    assert pred.tags(DecodePolicy("independent", 0.3)) == gold[0]


def test_viterbi_decodes_a_span_as_a_whole():
    import numpy as np

    from corefix.model.decode import threshold_bias, viterbi_tags

    pred = WordPredictions([(0, 1), (2, 3), (4, 5), (6, 7)], np.array(PROBS, dtype=np.float32))
    # P(B-DUP) P(I-DUP) = 0.32 beats P(O) P(O) = 0.12 where word by word the span loses its first word
    assert pred.tags(DecodePolicy()) == ["O", "B-DUP", "I-DUP", "O"]
    # two words at odds of 9 against each: 0.32 / 0.12 is not enough
    assert pred.tags(DecodePolicy(threshold=0.9)) == ["O"] * 4
    assert pred.tags(DecodePolicy(threshold=1.0)) == ["O"] * 4
    assert viterbi_tags(pred.probs, threshold_bias(0.0)) == ["B-DUP", "B-DUP", "I-DUP", "B-DUP"]
    assert pred.tags(DecodePolicy(threshold=0.0)) == ["O"] * 4  # every word flagged: the article is kept whole
    with pytest.raises(ValueError, match="decoding"):
        DecodePolicy("greedy")


def test_training_writes_the_calibrated_decoding_and_predict_uses_it(tiny_model, tiny_data):
    from corefix.model.calibrate import SPLIT_PENALTIES
    from corefix.model.decode import DECODINGS
    from corefix.model.metrics import THRESHOLDS
    from corefix.model.predict import Restorer

    best, run = tiny_model
    card = json.loads((best / "corefix.json").read_text())
    cal = card["calibration"]
    assert cal["articles"] == len(read_jsonl(tiny_data / "validation.jsonl")[:200])
    assert all(cal[d]["best_threshold"] in THRESHOLDS for d in DECODINGS)
    best_f1 = max([cal["argmax_f1"]] + [cal[d]["f1"] for d in DECODINGS])
    if card["threshold"] is None:
        assert card["decoding"] == "independent" and cal["argmax_f1"] == best_f1
    else:
        assert card["threshold"] == cal[card["decoding"]]["best_threshold"]
        assert cal[card["decoding"]]["f1"] == best_f1 > cal["argmax_f1"]
    if card["decoding"] == "viterbi":
        tried = cal["viterbi"]["split_penalty_f1"]
        assert [float(k) for k in tried] == list(SPLIT_PENALTIES) and tried[str(card["split_penalty"])] == max(tried.values())
        glued = cal["viterbi"]["glued_copies_f1"]  # glued copies allowed only where they gain on validation
        assert set(glued) == {"False", "True"} and card["glued_copies"] == (glued["True"] > glued["False"])
    else:
        assert card["split_penalty"] == 0.0 and card["glued_copies"] is False
    detector = Detector.load(best)
    assert detector.policy == DecodePolicy(card["decoding"], card["threshold"], card["split_penalty"],
                                           glued_copies=card["glued_copies"])
    assert Restorer.from_pretrained(best, threshold=0.95).detector.policy.threshold == 0.95
    assert Detector.load(best, InferenceOptions(decoding="independent")).policy.decoding == "independent"
    with pytest.raises(ValueError, match="decoding"):
        Detector.load(best, InferenceOptions(decoding="greedy"))


def test_first_subwords_of_a_window():
    from corefix.model.inference import first_subwords

    pos, wid = first_subwords([None, 0, 0, 1, 2, 2, 2, None])
    assert pos.tolist() == [1, 3, 4] and wid.tolist() == [0, 1, 2]
    pos, wid = first_subwords([None, 5, 6, 6, None])  # a window that starts mid-article
    assert pos.tolist() == [1, 2] and wid.tolist() == [5, 6]


def test_calibrate_command_rewrites_the_card_from_given_articles(tiny_model, tiny_data, tmp_path, capsys):
    import shutil

    from corefix.cli import main
    from corefix.model.calibrate import FIRST_MENTION_BIASES

    model = tmp_path / "model"
    shutil.copytree(tiny_model[0], model)
    card = json.loads((model / "corefix.json").read_text())
    card.update({"decoding": "independent", "threshold": 0.95, "split_penalty": 0.0})
    (model / "corefix.json").write_text(json.dumps(card))
    main(["calibrate", "--model", str(model), "--data", str(tiny_data / "validation.jsonl"), "--limit", "2"])
    out = json.loads(capsys.readouterr().out)
    after = json.loads((model / "corefix.json").read_text())
    assert out["calibration"]["articles"] == 2 and after["calibration"] == out["calibration"]
    assert (after["decoding"], after["threshold"]) == (out["decoding"], out["threshold"])
    assert after["train_config"] == card["train_config"]  # the rest of the card is kept
    main(["calibrate", "--model", str(model)])  # default: the validation split of the training data
    assert json.loads(capsys.readouterr().out)["data"] == str(tiny_data / "validation.jsonl")
    # only the first-mention bias chosen again: the rest of the policy and its calibration kept
    card = json.loads((model / "corefix.json").read_text())
    card.update({"decoding": "independent", "threshold": 0.95, "first_mention_bias": 7.0})
    (model / "corefix.json").write_text(json.dumps(card))
    main(["calibrate", "--model", str(model), "--only-first-mention-bias", "--limit", "3"])
    capsys.readouterr()
    after = json.loads((model / "corefix.json").read_text())
    assert (after["decoding"], after["threshold"], after["split_penalty"]) == ("independent", 0.95, card["split_penalty"])
    assert after["first_mention_bias"] in FIRST_MENTION_BIASES and after["calibration"]["first_mention_bias_articles"] == 3
    assert {k: v for k, v in after["calibration"].items() if not k.startswith("first_mention_bias")} == \
        {k: v for k, v in card["calibration"].items() if not k.startswith("first_mention_bias")}
    for args, message in ((["--data", str(tmp_path / "none.jsonl")], "no such file"), (["--limit", "0"], "--limit"),
                          (["--data", str(tmp_path)], "no such file"), (["--prefer-threshold", "1.5"], "between 0 and 1")):
        with pytest.raises(SystemExit):
            main(["calibrate", "--model", str(model), *args])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["calibrate", "--model", str(tmp_path / "missing")])
    assert "not found" in capsys.readouterr().err


def test_calibration_compares_viterbi_after_tuning_its_split_penalty():
    """A copy whose second word the model half reads as a new copy: plain thresholds and Viterbi without a
    split penalty both cut it in two (a tie), Viterbi with the penalty finds it whole, and that is chosen."""
    import numpy as np

    from corefix.model.calibrate import choose_policy

    probs = np.array([[0.1, 0, 0, 0.9, 0], [0.1, 0, 0, 0.5, 0.4], [1.0, 0, 0, 0, 0]], dtype=np.float32)
    preds = [WordPredictions([(0, 1), (2, 3), (4, 5)], probs) for _ in range(3)]
    gold = [["B-DUP", "I-DUP", "O"]] * 3
    policy, cal = choose_policy(gold, preds, "f1")
    assert cal["independent"]["f1"] == cal["viterbi"]["f1"] < 1.0  # the tie before the penalty is tuned
    assert policy.decoding == "viterbi" and policy.split_penalty > 0
    assert preds[0].tags(policy) == ["B-DUP", "I-DUP", "O"]


def test_calibration_for_f05_prefers_precision():
    """Two candidate operating points: F1 takes the one that finds more, F0.5 the surer one."""
    import numpy as np

    from corefix.model.calibrate import choose_policy

    # 3 words per article: a sure copy (0.95), a doubtful word that is a copy in 2 of 3 articles (0.5)
    preds, gold = [], []
    for k in range(3):
        probs = np.array([[0.05, 0, 0, 0.95, 0], [0.5, 0, 0, 0.5, 0], [1.0, 0, 0, 0, 0]], dtype=np.float32)
        preds.append(WordPredictions([(0, 1), (2, 3), (4, 5)], probs))
        gold.append(["B-DUP", "B-DUP" if k < 2 else "O", "O"])
    f1, cal1 = choose_policy(gold, preds, "f1")
    f05, cal05 = choose_policy(gold, preds, "f0.5")
    assert cal1["metric"] == "f1" and cal05["metric"] == "f0.5"
    # F1 (5 of 6 flags right, all found: 0.91) flags the doubtful word; F0.5 (0.88 against 0.86) leaves it
    assert preds[0].tags(f1)[1] == "B-DUP" and preds[0].tags(f05)[1] == "O"
    with pytest.raises(ValueError, match="metric"):
        choose_policy(gold, preds, "f2")
    with pytest.raises(ValueError, match="calibration_metric"):
        TrainConfig(calibration_metric="f2")


def test_calibration_counts_each_damage_profile_once():
    """Ten articles of a dense profile whose doubtful word (0.42) is never a copy, and one of a sparse profile whose
    only copy is that doubtful: pooled, the dense profile decides and the sparse copy is never found (F1 0.95
    against 0.69); with the profiles given, each counts once (mean F1 0.83 against 0.50) and it is found."""
    import numpy as np

    from corefix.model.calibrate import choose_policy

    sure, doubtful, plain = [0.05, 0, 0, 0.95, 0], [0.58, 0, 0, 0.42, 0], [1.0, 0, 0, 0, 0]
    offsets = [(0, 1), (2, 3), (4, 5)]
    preds = [WordPredictions(offsets, np.array([sure, doubtful, plain], dtype=np.float32)) for _ in range(10)]
    preds.append(WordPredictions(offsets, np.array([plain, doubtful, plain], dtype=np.float32)))
    gold = [["B-DUP", "O", "O"]] * 10 + [["O", "B-DUP", "O"]]
    pooled, cal = choose_policy(gold, preds, "f1")
    assert cal["average"] == "pooled" and "profiles" not in cal
    assert preds[-1].tags(pooled)[1] == "O" and preds[0].tags(pooled) == ["B-DUP", "O", "O"]
    groups = ["seed"] * 10 + ["resolvers"]
    by_profile, cal = choose_policy(gold, preds, "f1", groups=groups)
    assert cal["average"] == "profiles" and cal["profiles"] == {"seed": 10, "resolvers": 1}
    assert preds[-1].tags(by_profile)[1] == "B-DUP"
    assert round(cal[by_profile.decoding]["f1"], 3) == round((2 / 3 + 1.0) / 2, 3)
    # one profile alone is the pooled score
    assert choose_policy(gold[:10], preds[:10], "f1", groups=groups[:10])[1]["average"] == "pooled"


def test_first_mention_bias_spares_new_names_only():
    import numpy as np

    from corefix.model.decode import favour_o, new_names

    words = ["Then", "Ana", "met", "Ana", "today", "."]
    assert new_names(words).tolist() == [True, True, False, False, False, False]
    probs = np.array([[0.2, 0, 0, 0.8, 0]] * 4 + [[1.0, 0, 0, 0, 0]] * 2, dtype=np.float32)  # "today ." kept
    pred = WordPredictions([(i, i + 1) for i in range(6)], probs, words)
    for decoding in ("viterbi", "independent"):
        flagged = pred.tags(DecodePolicy(decoding, 0.5))
        spared = pred.tags(DecodePolicy(decoding, 0.5, first_mention_bias=2.0))
        assert flagged[1] != "O" and flagged[3] != "O"
        assert spared[1] == "O" and spared[3] != "O"  # odds of 4 for, e^2 against: the new name stays
    # the bias is a shift of O's log-odds on the masked words
    shifted = favour_o(probs, np.array([True, False, False, False, False, False]), 1.0)
    assert np.isclose(shifted[0, 0] / shifted[0, 3], 0.25 * np.e) and np.allclose(shifted[1], probs[1])


def test_calibration_keeps_first_mentions_under_the_limit():
    import numpy as np

    from corefix.model.calibrate import FIRST_MENTION_LIMIT, choose_policy
    from corefix.model.metrics import first_mention_flag_rate
    from corefix.words import split_words

    # the model flags the first "Okafor" (a genuine first mention) as surely as the real copy
    texts, preds, gold = [], [], []
    for k in range(4):
        text = f"Then Okafor{k} met Ana . Ana Okafor{k} left ."
        offsets, words = split_words(text)
        probs = np.tile(np.array([0.97, 0, 0, 0.03, 0], dtype=np.float32), (len(words), 1))
        probs[1] = probs[6] = [0.3, 0, 0, 0.7, 0]
        texts.append(text)
        preds.append(WordPredictions(offsets, probs, words))
        gold.append(["O"] * 6 + ["B-DUP"] + ["O"] * (len(words) - 7))
    policy, cal = choose_policy(gold, preds, "f1", texts)
    tags = [p.tags(policy) for p in preds]
    assert policy.first_mention_bias > 0 and first_mention_flag_rate(texts, gold, tags)[0] <= FIRST_MENTION_LIMIT
    assert all(t[6] == "B-DUP" for t in tags) and "first_mention_bias" in cal


def test_a_first_mention_rate_within_the_limit_is_not_enough_without_the_articles_to_show_it():
    """The bias is chosen by the confidence bound of its flag rate: one first mention flagged in 120 is under
    the limit (0.83 %) but proves nothing, so the bias that spares it is chosen although it costs span F1."""
    import numpy as np

    from corefix.model.calibrate import FIRST_MENTION_LIMIT, choose_policy
    from corefix.model.metrics import first_mention_flag_rate
    from corefix.words import split_words

    texts, preds, gold = [], [], []
    for k in range(60):  # a copy drifted left of its name (a new word, so the bias spares it too)
        text = f"Then Okafor{k} met Ana{k} . Ana{k} Okafor{k} left ."
        offsets, words = split_words(text)
        probs = np.tile(np.array([0.97, 0, 0, 0.03, 0], dtype=np.float32), (len(words), 1))
        probs[1] = [0.3, 0, 0, 0.7, 0]
        if k == 0:
            probs[3] = [0.3, 0, 0, 0.7, 0]  # one genuine first mention flagged
        texts.append(text)
        preds.append(WordPredictions(offsets, probs, words))
        gold.append(["O", "B-DUP"] + ["O"] * (len(words) - 2))
    policy, cal = choose_policy(gold, preds, "f1", texts)
    unbiased = cal["first_mention_bias"]["0.0"]
    assert unbiased["first_mention_flag_rate"] <= FIRST_MENTION_LIMIT < unbiased["flag_rate_bound"]
    assert policy.first_mention_bias > 0
    tags = [p.tags(policy) for p in preds]
    assert first_mention_flag_rate(texts, gold, tags)[0] == 0


def test_the_flag_rate_bound_is_wilsons():
    from corefix.model.calibrate import flag_rate_bound

    assert flag_rate_bound(0.0, 100) == pytest.approx(1.6449 ** 2 / (100 + 1.6449 ** 2), rel=1e-3)
    assert 0.0 < flag_rate_bound(0.005, 200_000) - 0.005 < 0.0003 < flag_rate_bound(0.005, 2_000) - 0.005
    assert flag_rate_bound(0.5, 0) == 1.0


def test_the_schedule_spans_the_run_under_several_processes(monkeypatch):
    """Under accelerate launch with N processes the prepared scheduler steps N times per optimizer step:
    the schedule must be N times as long, so the learning rate reaches zero at the last step, not at 1/N."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    from corefix.model.train import make_optimizer, make_schedule

    AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=True)
    monkeypatch.setitem(PartialState._shared_state, "num_processes", 4)  # four processes, faked
    assert AcceleratorState().num_processes == accelerator.num_processes == 4
    cfg = TrainConfig(learning_rate=1.0, warmup_ratio=0.2)
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_schedule(optimizer, cfg, total_steps=10, num_processes=accelerator.num_processes)
    assert scheduler.lr_lambdas[0](40) == 0.0 and scheduler.lr_lambdas[0](39) > 0  # 10 steps x 4 processes
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    rates = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    assert rates[1] == max(rates) == 1.0  # warmup: 2 of the 10 optimizer steps
    assert all(r > 0 for r in rates[:-1]) and rates[-1] == 0.0


def test_the_running_loss_is_the_mean_since_the_last_log_across_epochs(tiny_encoder, tiny_data, tmp_path, monkeypatch):
    """A log window that straddles an epoch's end averages every batch in it, not only the new epoch's."""
    from corefix.model import train as train_module
    from corefix.model.train import RunningLoss

    running = RunningLoss()
    for loss in (1.0, 2.0, 3.0):
        running.add(loss)
    assert running.take() == 2.0 and running.take() == 0.0
    monkeypatch.setattr(train_module, "training_step", lambda *args: 1.0)  # every batch's loss is 1
    train(TrainConfig(model=tiny_encoder, data_dir=str(tiny_data), run_dir=str(tmp_path), max_length=64, stride=16,
                      batch_size=8, train_limit=6, max_steps=12, log_every=5, eval_every=1000, eval_docs=2),
          progress=False)
    log = _log(tmp_path)
    assert [r["loss"] for r in log if "loss" in r] == [1.0, 1.0]
    assert json.loads((tmp_path / "last" / "progress.json").read_text())["epoch"] >= 1  # epochs were crossed


def test_training_can_fine_tune_a_trained_corefix_model(tiny_model, tiny_encoder, tiny_data, tmp_path):
    """``model:`` naming a trained corefix model continues from its weights, and the card keeps its base encoder."""
    import torch
    from safetensors.torch import load_file

    from corefix.model.card import ModelCard
    from corefix.model.network import initial_model, is_corefix_model
    from corefix.model.train import TrainConfig, train

    best, _ = tiny_model
    assert is_corefix_model(str(best)) and not is_corefix_model(tiny_encoder)
    start, _, base = initial_model(str(best))
    assert base == tiny_encoder and start.training
    before = load_file(str(best / "model.safetensors"))
    cfg = TrainConfig(model=str(best), data_dir=str(tiny_data), run_dir=str(tmp_path / "run"), max_length=64,
                      stride=16, batch_size=8, learning_rate=1e-6, max_steps=2, eval_every=2, eval_docs=4, log_every=1)
    train(cfg, progress=False)
    card = ModelCard.load(tmp_path / "run" / "best")
    assert card.base_model == tiny_encoder
    after = load_file(str(tmp_path / "run" / "best" / "model.safetensors"))
    name = "classifier.weight"
    # two tiny steps from the trained weights: close to them, not back at a fresh head
    assert not torch.equal(after[name], before[name])
    assert torch.allclose(after[name], before[name], atol=1e-3)


def test_the_article_gate_drops_an_article_of_lukewarm_flags_only():
    import numpy as np

    from corefix.model.decode import DecodePolicy, gate_article

    probs = np.array([[0.07, 0, 0, 0.93, 0], [0.99, 0, 0, 0.01, 0], [0.4, 0, 0, 0.6, 0]], dtype=np.float32)
    tags = ["B-DUP", "O", "B-DUP"]
    assert gate_article(probs, tags, 0.0) == tags  # no gate
    assert gate_article(probs, tags, 0.9) == tags  # the sure flag (0.93) carries the article
    assert gate_article(probs, tags, 0.95) == ["O", "O", "O"]
    pred = WordPredictions([(0, 1), (2, 3), (4, 5)], probs)
    assert pred.tags(DecodePolicy("independent", 0.5, article_gate=0.95)) == ["O", "O", "O"]
    assert pred.spans(DecodePolicy("independent", 0.5, article_gate=0.95)) == []
    assert len(pred.spans(DecodePolicy("independent", 0.5, article_gate=0.9))) == 2


def test_a_gate_density_asks_a_long_article_for_more_sure_spans():
    """With a density, an article keeps its spans only if it holds that many sure ones per 100 words (one at
    least): one sure flag carries a 10-word article at 10 per 100 words, not at 20, and not a 1,000-word one at
    0.4 (four needed); density 0 is the plain gate (one sure flag anywhere)."""
    import numpy as np

    from corefix.model.decode import DecodePolicy, gate_article, passes_gate

    sure, lukewarm, plain = [0.05, 0, 0, 0.95, 0], [0.4, 0, 0, 0.6, 0], [0.99, 0, 0, 0.01, 0]
    probs = np.array([sure, plain, lukewarm] + [plain] * 7, dtype=np.float32)
    tags = ["B-DUP", "O", "B-DUP"] + ["O"] * 7
    assert gate_article(probs, tags, 0.9, 0.0) == tags
    assert gate_article(probs, tags, 0.9, 10.0) == tags
    assert gate_article(probs, tags, 0.9, 20.0) == ["O"] * 10  # two sure spans needed; the lukewarm one is not
    assert passes_gate([0.95, 0.97, 0.99], 1000, 0.9, 0.0) and not passes_gate([0.95, 0.97, 0.99], 1000, 0.9, 0.4)
    assert passes_gate([0.95, 0.97, 0.99, 0.91], 1000, 0.9, 0.4)
    assert passes_gate([0.5], 1000, 0.0, 0.4)  # no gate: the density is not read
    pred = WordPredictions([(i, i + 1) for i in range(10)], probs)
    assert pred.spans(DecodePolicy("independent", 0.5, article_gate=0.9, gate_density=20.0)) == []
    assert len(pred.spans(DecodePolicy("independent", 0.5, article_gate=0.9, gate_density=10.0))) == 2


def _one_sure_flag_per_clean_article():
    """Damaged articles holding three sure copies in 500 words, clean ones a single false flag as sure (0.999):
    no plain gate tells them apart, a density of 0.3 to 0.5 sure spans per 100 words does."""
    import numpy as np

    copy, word = [0.001, 0, 0, 0.999, 0], [1.0, 0, 0, 0, 0]
    dense = np.array([copy, word, copy, word, copy] + [word] * 495, dtype=np.float32)
    single = np.array([copy] + [word] * 499, dtype=np.float32)
    offsets = [(i, i + 1) for i in range(500)]
    gold_dense = ["B-DUP", "O", "B-DUP", "O", "B-DUP"] + ["O"] * 495
    return dense, single, offsets, gold_dense


def test_calibration_chooses_a_density_where_clean_articles_hold_one_sure_false_flag():
    from corefix.model.calibrate import choose_policy

    dense, single, offsets, gold_dense = _one_sure_flag_per_clean_article()
    preds = [WordPredictions(offsets, dense) for _ in range(5)]
    cleans = [WordPredictions(offsets, single) for _ in range(5)]
    policy, cal = choose_policy([gold_dense] * 5, preds, "f1", clean=cleans)
    assert policy.article_gate > 0 and policy.gate_density > 0
    assert cal["article_gate"]["0.0"]["clean_flag_rate"] == 1.0 and cal["article_gate"]["0.999"]["clean_flag_rate"] == 1.0
    assert not any(any(t != "O" for t in c.tags(policy)) for c in cleans)
    assert all(p.tags(policy) == gold_dense for p in preds)


def test_a_gate_may_not_drop_a_sparse_profile_the_pooled_score_hides():
    """200 dense articles and two of a profile whose one copy is all they hold: a density gate would cost the pool
    0.2 points of span F1 and that profile every span. Given the profiles, calibration refuses it (and no other gate spares the
    clean articles, so none is chosen); without them it takes the density gate."""
    from corefix.model.calibrate import choose_policy

    dense, single, offsets, gold_dense = _one_sure_flag_per_clean_article()
    preds = [WordPredictions(offsets, dense) for _ in range(200)] + [WordPredictions(offsets, single) for _ in range(2)]
    gold = [gold_dense] * 200 + [["B-DUP"] + ["O"] * 499] * 2
    cleans = [WordPredictions(offsets, single) for _ in range(5)]
    groups = ["seed"] * 200 + ["sparse"] * 2
    assert choose_policy(gold, preds, "f1", clean=cleans)[0].gate_density > 0
    policy, cal = choose_policy(gold, preds, "f1", clean=cleans, groups=groups)
    assert (policy.article_gate, policy.gate_density) == (0.0, 0.0)
    assert cal["article_gate"]["groups"] == {"seed": 200, "sparse": 2}
    assert cal["article_gate"]["0.9@0.3"]["by_group"]["sparse"] == 0.0


def test_an_article_is_never_restored_to_nothing():
    """A one-word text the model calls a copy ("secret" alone scored DUP 0.93 with the shipped model) keeps its
    word: every word with a letter or digit flagged drops the flags, in both decoders; one word left keeps them."""
    import numpy as np

    from corefix.model.decode import DecodePolicy, decode_tags_batch

    sure, plain = [0.05, 0, 0, 0.95, 0], [0.95, 0, 0, 0.05, 0]
    policy = DecodePolicy("independent", 0.5)
    every = WordPredictions([(0, 6), (6, 7)], np.array([sure, plain], dtype=np.float32), words=["secret", "."])
    assert every.tags(policy) == ["O", "O"]  # only the full stop would be left
    assert every.spans(policy) == []
    some = WordPredictions([(0, 6), (7, 12)], np.array([sure, plain], dtype=np.float32), words=["Trump", "spoke"])
    assert some.tags(policy) == ["B-DUP", "O"]
    assert decode_tags_batch([every.probs, some.probs], [every.words, some.words], policy) == [["O", "O"], ["B-DUP", "O"]]
    alone = WordPredictions([(0, 6)], np.array([sure], dtype=np.float32))  # no words given: every word counts
    assert alone.tags(policy) == ["O"]


def test_calibration_takes_the_threshold_within_one_standard_error_that_spares_clean_articles():
    """40 damaged articles: a sure copy, and a doubtful word (0.52) that is a copy in k of them; clean articles
    hold only that doubtful word. With k = 18, flagging it scores a little better (span F1 0.841 against 0.816),
    within the bootstrap standard error on 40 articles: the threshold that leaves it, and every clean article,
    alone is taken. With k = 30 the gap (0.933 against 0.727) is far outside it, and the doubtful word is
    flagged, clean articles or not. Without clean articles the best threshold is taken as before."""
    import numpy as np

    from corefix.model.calibrate import bootstrap_se, choose_policy

    sure, doubtful, plain = [0.05, 0, 0, 0.95, 0], [0.53, 0, 0, 0.47, 0], [1.0, 0, 0, 0, 0]
    offsets = [(0, 1), (2, 3), (4, 5)]
    preds = [WordPredictions(offsets, np.array([sure, doubtful, plain], dtype=np.float32)) for _ in range(40)]
    cleans = [WordPredictions(offsets, np.array([plain, doubtful, plain], dtype=np.float32)) for _ in range(10)]

    def gold(k):
        return [["B-DUP", "B-DUP" if i < k else "O", "O"] for i in range(40)]

    flags = [p.tags(choose_policy(gold(18), preds, "f1")[0])[1] for p in preds[:1]]
    assert flags == ["B-DUP"]  # no clean articles: the best threshold flags the doubtful word
    policy, cal = choose_policy(gold(18), preds, "f1", clean=cleans)
    step = cal["one_se_threshold"]
    assert step["best"] - step[str(policy.threshold)]["f1"] <= step["standard_error"]
    assert step["best_threshold"] <= 0.45 < policy.threshold and step[str(policy.threshold)]["clean_flag_rate"] == 0.0
    assert preds[0].tags(policy) == ["B-DUP", "O", "O"] and cleans[0].tags(policy) == ["O", "O", "O"]
    policy, cal = choose_policy(gold(30), preds, "f1", clean=cleans)
    assert policy.threshold <= 0.45 and preds[0].tags(policy)[1] == "B-DUP"
    assert cal["one_se_threshold"]["best"] - cal["one_se_threshold"]["0.5"]["f1"] > cal["one_se_threshold"]["standard_error"]
    # a preferred threshold (the incumbent's) is kept inside the band, though it flags clean articles; outside
    # the band it is not, and the rule chooses as without it
    kept, cal = choose_policy(gold(18), preds, "f1", clean=cleans, prefer_threshold=0.3)
    assert kept.threshold == 0.3 and cal["one_se_threshold"]["preferred"] == 0.3 == cal["one_se_threshold"]["chosen"]
    assert cal["one_se_threshold"]["0.3"]["clean_flag_rate"] == 1.0  # at 0.3, before the article gate
    moved, cal = choose_policy(gold(30), preds, "f1", clean=cleans, prefer_threshold=0.6)
    assert cal["one_se_threshold"]["best"] - cal["one_se_threshold"]["0.6"]["f1"] > cal["one_se_threshold"]["standard_error"]
    assert moved.threshold == policy.threshold <= 0.45
    # the standard error: 0 where every article is the same, the same figure for the same articles
    same = [["B-DUP", "O", "O"]] * 40
    assert bootstrap_se(same, same, "f1", {}) == 0.0
    tags = [p.tags(policy) for p in preds]
    assert bootstrap_se(gold(18), tags, "f1", {}) == bootstrap_se(gold(18), tags, "f1", {}) > 0


def test_calibration_chooses_the_gate_that_spares_clean_articles():
    """Damaged articles hold a sure copy and a lukewarm one; clean ones only a false flag surer than the
    lukewarm copy, so no threshold spares them without losing it: a gate between the false flag and the sure
    copy leaves every clean article untouched at no cost, and calibration takes it (the smallest such)."""
    import numpy as np

    from corefix.model.calibrate import choose_policy

    damaged = np.array([[0.001, 0, 0, 0.999, 0], [1.0, 0, 0, 0, 0], [0.4, 0, 0, 0.6, 0]], dtype=np.float32)
    clean = np.array([[0.08, 0, 0, 0.92, 0], [1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0]], dtype=np.float32)
    offsets = [(0, 1), (2, 3), (4, 5)]
    preds = [WordPredictions(offsets, damaged) for _ in range(4)]
    cleans = [WordPredictions(offsets, clean) for _ in range(4)]
    gold = [["B-DUP", "O", "B-DUP"]] * 4
    policy, cal = choose_policy(gold, preds, "f1", clean=cleans)
    assert policy.article_gate == 0.95
    assert cal["article_gate"]["0.0"]["clean_flag_rate"] == 1.0 and cal["article_gate"]["0.95"]["clean_flag_rate"] == 0.0
    assert all(p.tags(policy) == ["B-DUP", "O", "B-DUP"] for p in preds)
    # without clean articles no gate is chosen
    assert choose_policy(gold, preds, "f1")[0].article_gate == 0.0
