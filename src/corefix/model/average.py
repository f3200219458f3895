"""Averaging the weights of models fine-tuned from one another (a "model soup", Wortsman et al. 2022).

Two runs of the same network that start from the same weights (a fine-tune
and the model it started from) lie in one basin of the loss; the mean of
their weights often scores better than either. ``corefix average`` writes
that mean as a new model directory. The result has no decoding policy and
no span heads of its own: calibrate it and fit its heads again (the word
vectors the heads read have moved).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .card import ModelCard
from .network import load_trained, save_trained

SAME_FIELDS = ("max_length", "case_feature", "evidence")  # card fields the averaged models must share


def average_models(model_dirs: list[str | Path], out_dir: str | Path) -> ModelCard:
    """Write the mean of the weights of ``model_dirs`` (corefix models of one architecture) into ``out_dir``.

    The card is the first model's, without calibration, span heads or release record, and says what was
    averaged in ``training["averaged_from"]``.
    """
    if len(model_dirs) < 2:
        raise ValueError("averaging needs at least two models")
    first, tokenizer, card = load_trained(model_dirs[0])
    base = first.state_dict()
    total = {k: v.detach().double() for k, v in base.items() if v.is_floating_point()}
    for path in model_dirs[1:]:
        model, _, other = load_trained(path)
        differ = [f for f in SAME_FIELDS if getattr(other, f) != getattr(card, f)]
        if differ:
            raise ValueError(f"{path}: its card differs from {model_dirs[0]}'s in {', '.join(differ)}: not averaged")
        state = model.state_dict()
        if set(state) != set(base) or any(state[k].shape != v.shape for k, v in total.items()):
            raise ValueError(f"{path}: not the same network as {model_dirs[0]} (other tensors or shapes)")
        for k in total:
            total[k] += state[k].detach().double()
    first.load_state_dict({k: (v / len(model_dirs)).to(base[k].dtype) for k, v in total.items()}, strict=False)
    card = dataclasses.replace(card, calibration={}, heads={}, release={}, weights={},
                               training={**card.training, "averaged_from": [str(p) for p in model_dirs]})
    save_trained(first, tokenizer, card, Path(out_dir))
    return card
