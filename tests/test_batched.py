"""The batched prediction path (the GPU's fast path) and its benchmark, run on the CPU with the tiny model."""

import numpy as np
import pytest

from corefix.model.decode import DecodePolicy, decode_tags, decode_tags_batch, viterbi_tags, viterbi_tags_batch


def _probs(rng, n, ties=False):
    p = rng.dirichlet(np.full(5, 0.3), size=n).astype(np.float32)
    if ties and n > 4:
        p[1] = [1, 0, 0, 0, 0]  # a word the tokenizer gives no piece
        p[3] = p[4] = [0.2] * 5  # exact ties between tags
    return p


@pytest.mark.parametrize("glued", [False, True])
@pytest.mark.parametrize("o_bias,split_penalty", [(0.0, 0.0), (0.6, 0.25), (-1.0, 1.0), (float("inf"), 0.25), (2.0, -0.3)])
def test_bulk_viterbi_is_the_per_article_viterbi(o_bias, split_penalty, glued):
    rng = np.random.default_rng(0)
    probs = [_probs(rng, n, ties=True) for n in (0, 1, 2, 5, 40, 333, 7, 0, 90)]
    assert (viterbi_tags_batch(probs, o_bias, split_penalty, glued)
            == [viterbi_tags(p, o_bias, split_penalty, glued) for p in probs])


def test_bulk_decoding_is_the_per_article_decoding():
    rng = np.random.default_rng(1)
    words = [("Mr . Blair met Mr . Okafor and Blair said Mr . Okafor agreed . " * k).split() for k in (1, 3, 0, 2)]
    probs = [_probs(rng, len(w)) for w in words]
    for policy in (DecodePolicy("viterbi", 0.65, 0.25, True, 3.0), DecodePolicy("independent", 0.5),
                   DecodePolicy("viterbi", None, 0.0, False, 0.0), DecodePolicy("viterbi", 0.6, 0.5, glued_copies=True)):
        assert decode_tags_batch(probs, words, policy) == [decode_tags(p, w, policy) for p, w in zip(probs, words)]


@pytest.fixture(scope="module")
def detector(tiny_model):
    from corefix.model.inference import Detector
    from corefix.model.options import InferenceOptions

    return Detector.load(str(tiny_model[0]), InferenceOptions(runtime="torch"))  # the batched path runs torch


def test_batched_path_gives_predict_words_probabilities(detector, articles):
    from corefix.model.batched import predict_words_batched
    from corefix.model.inference import predict_words

    texts = [t for _, t in articles] + ["", " ".join(t for _, t in articles) * 4, "\x07 Lone control character"]
    card = detector.card
    args = (detector.model, detector.tokenizer, texts, card.max_length, card.stride)
    # small segments and chunks: several segments per article, several chunks, windows of many lengths
    ref = predict_words(*args, batch_size=3, features=card.features, segment_words=120)
    got = predict_words_batched(*args, features=card.features, batch_tokens=300, segment_words=120, chunk_words=200)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.offsets == r.offsets and g.words == r.words
        np.testing.assert_allclose(g.probs, r.probs, atol=1e-5)
        assert g.tags(detector.policy) == r.tags(detector.policy)
    assert ref[-1].probs[0, 0] == 1.0 and got[-1].probs[0, 0] == 1.0  # no piece: kept, in both


def test_host_processes_give_the_batched_tags(detector, articles):
    from corefix.model.batched import HostPool, predict_words_batched
    from corefix.model.decode import decode_tags_batch

    texts = [t for _, t in articles] * 3 + [""]
    card = detector.card
    ref = predict_words_batched(detector.model, detector.tokenizer, texts, card.max_length, card.stride, card.features)
    with HostPool(detector.tokenizer, 1, card.max_length, card.stride, card.features, chunk_chars=700) as pool:
        preds, tags = pool.predict(detector.model, texts, detector.policy)
    assert [p.offsets for p in preds] == [r.offsets for r in ref]
    np.testing.assert_allclose(np.concatenate([p.probs for p in preds]), np.concatenate([r.probs for r in ref]), atol=1e-5)
    assert tags == decode_tags_batch([r.probs for r in ref], [r.words for r in ref], detector.policy)


def test_bench_gpu_runs_on_the_cpu(detector, articles):
    from corefix.model.benchmark import bench_gpu, flops_per_window, format_gpu_summary

    texts = [t for _, t in articles] * 2
    result = bench_gpu(detector.model, detector.tokenizer, detector.card, texts, device="cpu", repeats=1,
                       peaks={"one TFLOP/s": 1e12}, warmup_texts=1)
    assert set(result["paths"]) == {"pipeline", "predict_words fp32", "batched fp32"}
    assert result["paths"]["batched fp32"]["same_decisions_as_fp32"] == 1.0
    assert result["bulk_decoding_same_as_per_article"] == 1.0
    cfg = detector.model.config
    window = detector.card.max_length
    assert flops_per_window(cfg, 1) < result["flops_per_token"] <= flops_per_window(cfg, window) / window
    assert result["flops_per_word"] == pytest.approx(result["flops_per_token"] * result["tokens_per_word"])
    rec = result["paths"]["batched fp32"]
    assert rec["flops_per_s"] == pytest.approx(rec["words_per_s"]["median"] * result["flops_per_word"])
    assert rec["share_of_peak"]["one TFLOP/s"] == pytest.approx(rec["flops_per_s"] / 1e12)
    assert "forward_only" in rec and set(rec["stages_s"]) >= {"windows", "forward", "decode"}
    table = format_gpu_summary(result)
    assert "| batched fp32 |" in table and "share of one TFLOP/s" in table


def test_flops_of_the_shipped_architecture():
    from transformers import BertConfig

    from corefix.model.benchmark import flops_per_window, matrix_parameters

    cfg = BertConfig(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_labels=5)
    assert matrix_parameters(cfg) == 6 * (4 * 384 * 384 + 2 * 384 * 1536) + 384 * 5 == 10_618_752
    # per token at a full 256-token window: 2 x parameters plus the attention's 6 layers x 4 x 256 x 384
    assert flops_per_window(cfg, 256) / 256 == 2 * 10_618_752 + 6 * 4 * 256 * 384


def test_benchmark_command_measures_prediction_on_the_device_it_is_given(tiny_model, tmp_path, capsys):
    import json

    from corefix.cli import main

    out = tmp_path / "bench.json"
    # "cpu:0" is not "cpu": the device path (bench_gpu), on the CPU here
    main(["benchmark", "--model", str(tiny_model[0]), "--data", str(tmp_path / "none.jsonl"), "--quick",
          "--only", "prediction", "--device", "cpu:0", "--out", str(out)])
    result = json.loads(out.read_text())
    assert "prediction" not in result and result["prediction_gpu"]["paths"]["batched fp32"]["same_decisions_as_fp32"] == 1.0
    assert "| batched fp32 |" in capsys.readouterr().out
