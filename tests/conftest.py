import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

BBC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bbc_news.jsonl"

ARTICLES = [
    ("a1", "Prime Minister Tony Blair said on Friday that he would meet Mr. Okafor in Accra. "
           "Mr. Blair told reporters that his talks with the Ghanaian leader would cover trade. "
           "Mr. Okafor has said he wants closer ties with the UK, and Blair agreed.\n\n"
           "The two men last met in London, where they spoke about high-speed rail links. "
           "Accra said it welcomed the visit. Mr. Okafor added that Blair was a friend."),
    ("a2", "Shares in Allied Domecq rose after reports that Pernod Ricard is considering a bid. "
           "Pernod Ricard has yet to contact its target. Allied Domecq said it was not aware of "
           "any approach. The firm's shares rose 4% in London, while Pernod's shares fell. "
           "Analysts said Pernod Ricard could struggle to fund the deal, but the company's "
           "bosses have said they are confident."),
    ("a3", "Ana Lopez sold her car to Ben Smith. She said he paid well. Ben Smith later said "
           "that Ana Lopez was a fair trader and that he would buy from her again."),
]


@pytest.fixture(scope="session")
def simulator():
    from corefix.data.simulate import Simulator

    return Simulator()


@pytest.fixture(scope="session")
def articles():
    return list(ARTICLES)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """A randomly initialised 2-layer BERT with the default encoder's tokenizer, saved locally."""
    from transformers import BertConfig, BertModel

    from corefix.model.network import load_tokenizer

    out = tmp_path_factory.mktemp("tiny-encoder")
    tok = load_tokenizer(None)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, simulator):
    """A small damaged dataset built from the fixture articles."""
    from corefix.data.corpus import Article
    from corefix.data.dataset import build_dataset

    out = tmp_path_factory.mktemp("tiny-data")
    arts = [Article(f"{i}-{a}", t) for i in range(12) for a, t in ARTICLES]
    build_dataset(arts, out, simulator, samples_per_article=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_encoder, tiny_data):
    """A tiny model trained for a few steps, calibrated and given span heads: (best model dir, run dir)."""
    from corefix.model.pipeline import train_model
    from corefix.model.train import TrainConfig

    run = tmp_path_factory.mktemp("tiny-run")
    cfg = TrainConfig(model=tiny_encoder, data_dir=str(tiny_data), run_dir=str(run), max_length=64, stride=16,
                      batch_size=8, learning_rate=5e-3, max_steps=30, eval_every=15, eval_docs=6, log_every=5,
                      heads_train_docs=12, heads_validation_docs=6)
    train_model(cfg, progress=False)
    return run / "best", run
