"""The ONNX Runtime path (issue #24): same words and decisions as torch, probabilities within tolerance, an
export cached beside the model and rebuilt when the weights change, and the path chosen by the hardware."""
import os
import shutil

import numpy as np
import pytest

from corefix.cli import main
from corefix.model import onnx_engine, precision
from corefix.model.inference import Detector
from corefix.model.network import SHIPPED_MODEL_DIR
from corefix.model.options import InferenceOptions
from corefix.model.predict import Restorer

from .conftest import ARTICLES

pytest.importorskip("onnxruntime")

TEXTS = [t for _, t in ARTICLES]
FP32_TOLERANCE = 1e-4  # largest difference of a word's probability between torch fp32 and ONNX Runtime fp32


@pytest.fixture(scope="module")
def model_copy(tiny_model, tmp_path_factory):
    """A copy of the tiny model that this module's tests may export into (and change)."""
    best, _ = tiny_model
    out = tmp_path_factory.mktemp("onnx-model") / "model"
    shutil.copytree(best, out, ignore=shutil.ignore_patterns("onnx"))
    return out


def _load(path, **kw):
    return Detector.load(path, InferenceOptions(**kw))


def test_onnx_fp32_gives_torch_probabilities_and_the_same_restored_text(model_copy):
    torch_det, onnx_det = _load(model_copy, runtime="torch"), _load(model_copy, runtime="onnx")
    assert (torch_det.runtime.precision, onnx_det.runtime.precision) == ("torch", "onnx")
    a, b = torch_det.predict(TEXTS, vectors=True), onnx_det.predict(TEXTS, vectors=True)
    for x, y in zip(a, b):
        assert x.offsets == y.offsets and x.words == y.words
        assert np.abs(x.probs - y.probs).max() < FP32_TOLERANCE
        assert np.abs(x.vectors.astype(np.float32) - y.vectors.astype(np.float32)).max() < 1e-2  # fp16 storage
        assert x.tags(torch_det.policy) == y.tags(onnx_det.policy)
    restored = [Restorer(d).restore_many(TEXTS, [str(i) for i in range(len(TEXTS))]) for d in (torch_det, onnx_det)]
    assert [r.restored for r in restored[0]] == [r.restored for r in restored[1]]


def test_onnx_int8_keeps_the_words_and_nearly_all_decisions(model_copy):
    fp32, int8 = _load(model_copy, runtime="torch"), _load(model_copy, runtime="onnx", precision="int8")
    assert int8.precision.precision == "int8"
    a, b = fp32.predict(TEXTS), int8.predict(TEXTS)
    diffs = np.concatenate([np.abs(x.probs - y.probs).ravel() for x, y in zip(a, b)])
    assert all(x.offsets == y.offsets for x, y in zip(a, b))
    assert np.median(diffs) < 0.02  # quantization moves probabilities a little, not at random
    same = sum(np.sum(x.probs.argmax(1) == y.probs.argmax(1)) for x, y in zip(a, b)) / sum(len(x.probs) for x in a)
    assert same > 0.95
    # where the decisions agree, the restored text is the same
    ids = [str(i) for i in range(len(TEXTS))]
    agree = [x.tags(fp32.policy) == y.tags(int8.policy) for x, y in zip(a, b)]
    assert any(agree)
    for same_tags, r32, r8 in zip(agree, Restorer(fp32).restore_many(TEXTS, ids), Restorer(int8).restore_many(TEXTS, ids)):
        if same_tags:
            assert r32.restored == r8.restored


def test_the_export_is_cached_and_rebuilt_when_the_weights_change(model_copy, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(model_copy, model, ignore=shutil.ignore_patterns("onnx"))
    det = _load(model, runtime="onnx")
    built = det.model.path
    assert built.parent == model / "onnx" and built.is_file()
    stamp = built.stat().st_mtime_ns
    assert _load(model, runtime="onnx").model.path == built and built.stat().st_mtime_ns == stamp  # reused
    # new weights: a new file, the stale one removed
    from safetensors.torch import load_file, save_file

    weights = load_file(model / "model.safetensors")
    name = next(k for k in weights if k.endswith("classifier.bias"))
    weights[name] = weights[name] + 1.0
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    rebuilt = _load(model, runtime="onnx").model.path
    assert rebuilt != built and rebuilt.is_file() and not built.exists()


def test_the_shipped_model_and_read_only_folders_cache_outside_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("COREFIX_CACHE", str(tmp_path / "cache"))
    folder = onnx_engine.cache_folder(SHIPPED_MODEL_DIR)
    assert SHIPPED_MODEL_DIR.resolve() not in folder.parents and (tmp_path / "cache") in folder.parents
    monkeypatch.setattr(onnx_engine, "_writable", lambda _: False)
    other = tmp_path / "some-model"
    other.mkdir()
    assert (tmp_path / "cache") in onnx_engine.cache_folder(other).parents


def test_auto_takes_onnx_where_installed_and_int8_where_the_cpu_has_int8_products(monkeypatch):
    monkeypatch.setattr(precision, "cpu_int8_products", lambda: "vnni")
    runtime = precision.inference_runtime("auto", "auto", "cpu")
    assert runtime.precision == "onnx"
    assert precision.inference_precision("auto", "cpu", "onnx").precision == "int8"
    monkeypatch.setattr(precision, "cpu_int8_products", lambda: "avx2")  # as accurate there, and 1.4x fp32
    choice = precision.inference_precision("auto", "cpu", "onnx")
    assert choice.precision == "int8" and "AVX2" in choice.reason
    monkeypatch.setattr(precision, "cpu_int8_products", lambda: None)
    assert precision.inference_precision("auto", "cpu", "onnx").precision == "fp32"
    # bf16 runs on torch; a GPU runs torch
    assert precision.inference_runtime("auto", "bf16", "cpu").precision == "torch"
    assert precision.inference_runtime("auto", "auto", "cuda").precision == "torch"
    with pytest.raises(ValueError, match="runs on the CPU"):
        precision.inference_runtime("onnx", "fp32", "cuda")
    with pytest.raises(ValueError, match="bf16 runs on --runtime torch"):
        precision.inference_runtime("onnx", "bf16", "cpu")


def test_without_onnxruntime_auto_falls_back_and_onnx_is_a_one_line_error(model_copy, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(onnx_engine, "available", lambda: False)
    choice = precision.inference_runtime("auto", "fp32", "cpu")
    assert choice.precision == "torch" and "not installed" in choice.reason
    assert _load(model_copy).runtime.precision == "torch"
    article = tmp_path / "a.txt"
    article.write_text(TEXTS[0], encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--model", str(model_copy), "--input", str(article), "--runtime", "onnx"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'corefix[onnx]'" in err


def test_predict_on_the_onnx_runtime_from_the_command_line(model_copy, tmp_path, capsys):
    article = tmp_path / "a.txt"
    article.write_text(TEXTS[0], encoding="utf-8")
    outs = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"{runtime}.txt"
        main(["predict", "--model", str(model_copy), "--input", str(article), "--runtime", runtime, "--output", str(out)])
        outs[runtime] = out.read_text(encoding="utf-8")
    assert outs["torch"] == outs["onnx"] and outs["onnx"].strip()


def test_auto_falls_back_to_torch_when_the_export_cannot_be_written(model_copy, monkeypatch):
    def unwritable(*_a, **_k):
        raise PermissionError(13, "Permission denied", "/read-only/onnx")

    monkeypatch.setattr(onnx_engine, "onnx_file", unwritable)
    with pytest.warns(UserWarning, match="running on torch"):
        det = _load(model_copy)  # runtime auto
    assert det.runtime.precision == "torch" and det.predict(TEXTS[:1])[0].probs.shape[0] > 0
    with pytest.raises(PermissionError):
        _load(model_copy, runtime="onnx")  # asked for: the error is the user's to see
