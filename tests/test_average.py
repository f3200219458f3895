"""`corefix average`: the mean of two models' weights, as a new model directory to calibrate."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file


def _perturbed_copy(src, dst, delta):
    """A copy of the model in ``src`` whose floating weights are all moved by ``delta``."""
    shutil.copytree(src, dst)
    weights = load_file(str(dst / "model.safetensors"))
    save_file({k: v + delta if v.is_floating_point() else v for k, v in weights.items()}, str(dst / "model.safetensors"),
              metadata={"format": "pt"})
    return dst


def test_average_writes_the_mean_of_the_weights_and_a_card_to_calibrate(tiny_model, tmp_path, capsys):
    from corefix.cli import main

    a, b = _perturbed_copy(tiny_model[0], tmp_path / "a", 0.0), _perturbed_copy(tiny_model[0], tmp_path / "b", 0.5)
    main(["average", "--models", str(a), str(b), "--out", str(tmp_path / "soup")])
    assert json.loads(capsys.readouterr().out)["averaged_from"] == [str(a), str(b)]
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    soup = load_file(str(tmp_path / "soup" / "model.safetensors"))
    assert set(soup) == set(wa)
    for k, v in soup.items():
        assert torch.allclose(v, (wa[k] + wb[k]) / 2 if v.is_floating_point() else wa[k], atol=1e-6), k
    card = json.loads((tmp_path / "soup" / "corefix.json").read_text())
    before = json.loads((a / "corefix.json").read_text())
    assert before["calibration"] and before["heads"]  # the averaged model keeps neither: its vectors moved
    assert card["calibration"] == {} and card["heads"] == {} and not (tmp_path / "soup" / "heads.safetensors").exists()
    assert card["training"]["averaged_from"] == [str(a), str(b)] and card["case_feature"] == before["case_feature"]


def test_average_refuses_models_that_do_not_match(tiny_model, tmp_path, capsys):
    from corefix.cli import main

    a = _perturbed_copy(tiny_model[0], tmp_path / "a", 0.0)
    other = _perturbed_copy(tiny_model[0], tmp_path / "other", 0.0)
    card = json.loads((other / "corefix.json").read_text())
    card["evidence"] = not card["evidence"]
    (other / "corefix.json").write_text(json.dumps(card))
    for models, message in (([a], "at least two"), ([a, other], "evidence"), ([a, tmp_path / "missing"], "not found")):
        with pytest.raises(SystemExit):
            main(["average", "--models", *map(str, models), "--out", str(tmp_path / "soup")])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "soup").exists()
