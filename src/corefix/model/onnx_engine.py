"""Prediction on ONNX Runtime: the trained model exported once, cached beside it, run on ORT's fused kernels.

``--runtime onnx`` (or ``auto`` where it is the faster path, :func:`corefix.model.precision.inference_runtime`)
runs the same windows through an ONNX copy of the model instead of torch:

- **export**: the token classifier with its last hidden layer as a second output (the span heads read it),
  traced once with eager attention so that ORT's transformer optimizer fuses each layer's attention, the
  embeddings' layer norm, the residual layer norms and GELU into single kernels;
- **int8**: that fused graph's matrix products quantized to int8 weights, one scale per output column,
  with activations scaled per batch at run time (ORT's dynamic quantization: each batch of real windows
  sets its own scale, so no calibration set can be off for an unusual article); the layers
  :data:`INT8_KEEP_FP32` names stay in fp32, chosen by a sensitivity sweep on real windows
  (docs/benchmarks.md);
- **cache**: the files live in ``<model dir>/onnx/`` (or, for the shipped model and any model folder
  corefix may not write to, under ``$COREFIX_CACHE`` / ``~/.cache/corefix/onnx/``), named by a digest of the
  model's weights, card and config, the ORT version and the export recipe: new weights build new files, and
  stale ones are removed. Files are written to a temporary name and renamed, so concurrent workers never
  read half a file.

ONNX files are protobuf, not pickles: loading one runs no code. The engine needs the ``onnx`` extra
(``pip install -e ".[onnx]"``: onnxruntime and onnx).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

EXPORT_RECIPE = "2"  # bump when the export or quantization recipe changes: every cache is rebuilt
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Matrix products left in fp32 in the int8 graph: the tag classifier (its 384 x 5 product costs nothing and
# decides every tag). Chosen by the sweep in docs/benchmarks.md (int8 sensitivity): keeping the embeddings,
# the first, the last layer or the attention in fp32 as well gained nothing measurable.
INT8_KEEP_FP32 = ("classifier",)
INT8_PER_CHANNEL = True  # one weight scale per output column, not per matrix: -0.27 points of span F1, not -0.82
OPTIMIZER_TYPES = {"bert": "bert", "roberta": "bert", "distilbert": "bert", "xlm-roberta": "bert",
                   "electra": "bert", "deberta-v2": "bert"}  # ORT's transformer optimizer: what it fuses


log = logging.getLogger(__name__)


class OnnxEngineError(ValueError):
    """The ONNX engine cannot run this model here (onnxruntime missing, an export that fails)."""


def available() -> bool:
    """True where onnxruntime and onnx import (the ``onnx`` extra)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    if not available():
        raise OnnxEngineError("--runtime onnx needs onnxruntime and onnx: pip install 'corefix[onnx]' "
                              "(or pip install -e '.[onnx]' in a checkout), or use --runtime torch")


def _user_cache() -> Path:
    root = os.environ.get("COREFIX_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                           os.path.expanduser("~/.cache"), "corefix")
    return Path(root) / "onnx"


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def cache_folder(model_dir: Path) -> Path:
    """Where a model's ONNX files go: ``<model dir>/onnx`` when corefix may write there (never inside the
    installed package), else a folder of the user cache named by the model folder's path."""
    from .network import SHIPPED_MODEL_DIR

    model_dir = Path(model_dir).resolve()
    if model_dir != SHIPPED_MODEL_DIR.resolve() and _writable(model_dir):
        return model_dir / "onnx"
    tag = hashlib.sha256(str(model_dir).encode()).hexdigest()[:16]
    return _user_cache() / f"{model_dir.name}-{tag}"


def fingerprint(model_dir: Path, precision: str) -> str:
    """A digest of what the ONNX file is made from: the model folder's weights, card and config (a compact
    model's card names its base encoder's digest), the ORT and torch versions, the recipe, the precision."""
    import onnxruntime

    h = hashlib.sha256()
    for part in (EXPORT_RECIPE, precision, onnxruntime.__version__, torch.__version__, ",".join(INT8_KEEP_FP32),
                 str(INT8_PER_CHANNEL)):
        h.update(part.encode() + b"\0")
    for name in ("config.json", "model.safetensors", "corefix.json"):
        f = Path(model_dir) / name
        if f.is_file():
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:20]


class _WithHidden(torch.nn.Module):
    """The token classifier returning ``(logits, last hidden layer)``: what the ONNX graph computes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         output_hidden_states=True)
        return out.logits, out.hidden_states[-1]


def export_fp32(model, path: Path) -> None:
    """Export ``model`` (a torch token classifier, eval mode) to ONNX at ``path``, optimized where ORT's
    transformer optimizer knows the architecture."""
    config = model.config
    before = getattr(config, "_attn_implementation", None)
    example = torch.ones((2, 16), dtype=torch.long)
    raw = path.with_suffix(".raw.onnx")
    try:
        if before is not None and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")  # the pattern ORT's optimizer fuses into one Attention op
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_WithHidden(model).eval(), (example, example, torch.zeros_like(example)), str(raw),
                              input_names=list(INPUTS), output_names=["logits", "hidden"], opset_version=OPSET,
                              dynamic_axes={k: {0: "batch", 1: "tokens"} for k in (*INPUTS, "logits", "hidden")},
                              dynamo=False)
    except Exception as exc:  # an architecture the exporter cannot trace
        raise OnnxEngineError(f"cannot export {config.model_type} to ONNX ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); use --runtime torch") from exc
    finally:
        if before is not None and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(before)
    kind = OPTIMIZER_TYPES.get(config.model_type)
    if kind is None:
        raw.replace(path)  # ORT still applies its generic fusions when it loads the file
        return
    from onnxruntime.transformers import optimizer

    with warnings.catch_warnings(), _quiet("onnxruntime", "root"):
        warnings.simplefilter("ignore")
        optimized = optimizer.optimize_model(str(raw), model_type=kind, num_heads=config.num_attention_heads,
                                             hidden_size=config.hidden_size)
    optimized.save_model_to_file(str(path))
    raw.unlink()


def quantize_int8(fp32_path: Path, path: Path, keep_fp32: tuple[str, ...] = INT8_KEEP_FP32,
                  per_channel: bool = INT8_PER_CHANNEL) -> None:
    """Dynamic int8 quantization of ``fp32_path``'s matrix products (signed int8 weights, per output column
    when ``per_channel``; activations scaled per batch), leaving every node whose name contains one of
    ``keep_fp32`` in fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    excluded = [n.name for n in graph.node if any(k in n.name for k in keep_fp32)]
    with _quiet("onnxruntime", "root"):  # its advice to pre-process is for static quantization of images
        quantize_dynamic(str(fp32_path), str(path), weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                         per_channel=per_channel, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops: no inferred type


class _quiet:
    """Silence the named loggers below ERROR for a block (ORT's optimizer and quantizer log advice at WARNING)."""

    def __init__(self, *names):
        self.loggers = [logging.getLogger(n if n != "root" else None) for n in names]

    def __enter__(self):
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)


def cached_file(model_dir: Path, precision: str) -> Path:
    """Where the ONNX file of the model in ``model_dir`` in ``precision`` is cached (it may not exist yet)."""
    require()
    if precision not in ("fp32", "int8"):
        raise OnnxEngineError(f"the onnx engine runs fp32 or int8, not {precision}")
    return cache_folder(model_dir) / f"model-{precision}-{fingerprint(model_dir, precision)}.onnx"


def onnx_file(model, model_dir: Path, precision: str) -> Path:
    """The ONNX file of ``model`` (loaded from ``model_dir``) in ``precision`` (fp32 or int8), built now
    unless the cache holds it for these weights; older builds in the cache are removed."""
    target = cached_file(model_dir, precision)
    if target.is_file():
        return target
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    log.warning("exporting the model to ONNX Runtime (%s), once: cached in %s", precision, folder)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        export_fp32(model, fp32)
        built = fp32
        if precision == "int8":
            built = Path(tmp) / "model-int8.onnx"
            quantize_int8(fp32, built)
        os.replace(built, target)  # atomic: a concurrent worker sees no file or the whole file
    for old in folder.glob(f"model-{precision}-*.onnx"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


class OrtTokenClassifier:
    """An ONNX Runtime session that answers like the torch token classifier in
    :func:`corefix.model.inference.predict_words`: ``model(input_ids=..., attention_mask=..., ...)`` gives
    ``.logits`` (and ``.hidden_states[-1]`` when asked) as torch tensors."""

    device = torch.device("cpu")

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()  # as many as torch was given
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids, attention_mask, token_type_ids=None, output_hidden_states=False):
        feed = {"input_ids": np.ascontiguousarray(input_ids.numpy(), dtype=np.int64),
                "attention_mask": np.ascontiguousarray(attention_mask.numpy(), dtype=np.int64),
                "token_type_ids": (np.zeros_like(input_ids.numpy(), dtype=np.int64) if token_type_ids is None
                                   else np.ascontiguousarray(token_type_ids.numpy(), dtype=np.int64))}
        wanted = ["logits", "hidden"] if output_hidden_states else ["logits"]
        out = self.session.run(wanted, feed)
        hidden = (torch.from_numpy(out[1]),) if output_hidden_states else None
        return SimpleNamespace(logits=torch.from_numpy(out[0]), hidden_states=hidden)


def clear_cache(model_dir: Path) -> None:
    """Remove a model's ONNX files (they are rebuilt on the next use)."""
    shutil.rmtree(cache_folder(model_dir), ignore_errors=True)
