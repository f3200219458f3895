"""Which precision to compute in, chosen by what the hardware does natively.

bf16 pays only where the hardware computes it: GPUs with bf16 units, and CPUs
with AVX512-BF16 or AMX. Elsewhere (AVX2-only CPUs: most laptops and many
cloud machines) torch emulates it, and it is a trap, measured with MiniLM on
a 2-core AMD EPYC with AVX2 only, torch 2.13 CPU build: a training step 35 s
in bf16 autocast against 1.6 s in fp32, a prediction forward pass 3.8-4.9 s
against 1.2-1.7 s.

:func:`training_precision` and :func:`inference_precision` turn a requested
precision (``auto`` or an explicit one) into the one to run and a sentence
saying why; an explicit request for a precision the hardware only emulates is
honoured, with a one-line warning naming the measured cost.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

TRAINING_PRECISIONS = ("auto", "no", "fp16", "bf16")  # accelerate's mixed_precision modes, and auto
EMULATED_BF16_COST = ("bf16 is emulated on this CPU (no AVX512-BF16 or AMX): measured about 20x slower than fp32 "
                      "for a training step (35 s against 1.6 s, MiniLM on an AVX2 CPU) and 3x slower for prediction")


class PrecisionWarning(UserWarning):
    """A precision was asked for that this hardware only emulates."""


@dataclass(frozen=True)
class Choice:
    precision: str  # what runs: no/fp16/bf16 for training, fp32/bf16/int8 for inference
    reason: str  # why, in one sentence (for the log and the model card)

    def to_dict(self) -> dict:
        return {"precision": self.precision, "reason": self.reason}


def _cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _torch_probes(*names: str) -> list[bool] | None:
    """torch's CPU feature probes (``torch.cpu._is_*_supported``: CPUID, as ONNX Runtime and oneDNN read
    it), or None where this build lacks one or one fails (the callers fall back to the kernel's flags)."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in names]
    if any(p is None for p in probes):
        return None
    try:
        return [bool(p()) for p in probes]
    except Exception:  # an unusual build
        return None


@functools.lru_cache(maxsize=1)
def cpu_native_bf16() -> bool:
    """True where this CPU computes bf16 natively (AVX512-BF16 or AMX), as torch and the kernel report it."""
    probed = _torch_probes("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(probed) if probed is not None else bool(_cpuinfo_flags() & {"avx512_bf16", "amx_bf16"})


@functools.lru_cache(maxsize=1)
def cpu_int8_products() -> str | None:
    """The int8 dot products this CPU gives ONNX Runtime's int8 kernels, as this process's CPUID reports them
    (torch's probes read CPUID, as ORT does; /proc/cpuinfo only where torch has no probe): ``"vnni"``
    (AVX512-VNNI, AVX-VNNI or AMX-INT8: one instruction per product), ``"avx2"`` (``vpmaddubsw``, about half
    the rate) or None."""
    flags = _cpuinfo_flags()
    probed = _torch_probes("_is_vnni_supported", "_is_amx_tile_supported", "_is_avx2_supported")
    vnni, amx, avx2 = probed if probed is not None else (bool(flags & {"avx512_vnni", "amx_int8"}), False,
                                                         "avx2" in flags)
    if vnni or amx or (avx2 and "avx_vnni" in flags):
        return "vnni"
    return "avx2" if avx2 else None


def cpu_name() -> str:
    """The CPU's model name and whether bf16 is native, for timings and logs."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import platform

    name = name or platform.processor() or platform.machine()
    return f"{name} ({'native bf16' if cpu_native_bf16() else 'no native bf16'})"


def _warn(message: str) -> None:
    warnings.warn(message, PrecisionWarning, stacklevel=3)


def training_precision(requested: str, device_type: str | None = None) -> Choice:
    """The mixed-precision mode training runs in (accelerate's ``no``/``fp16``/``bf16``) and why."""
    import torch

    if requested not in TRAINING_PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {', '.join(TRAINING_PRECISIONS)}, got {requested!r}")
    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if requested == "auto":
            return Choice("bf16" if bf16_ok else "fp16",
                          "auto: this GPU computes bf16" if bf16_ok else "auto: this GPU has no bf16, fp16 instead")
        return Choice(requested, f"asked for {requested} on a GPU")
    chosen = _bf16_on_cpu(requested, Choice("no", "auto: this CPU has no native bf16 (no AVX512-BF16 or AMX), so fp32"),
                          f"mixed_precision bf16 was asked for, but {EMULATED_BF16_COST}; use mixed_precision: auto")
    if chosen:
        return chosen
    if requested == "fp16":
        raise ValueError("mixed_precision fp16 needs a GPU; on a CPU use auto, no or bf16")
    return Choice(requested, f"asked for {requested}" + (" (fp32)" if requested == "no" else ""))


def inference_runtime(requested: str, precision: str, device_type: str) -> Choice:
    """What runs the network (``torch`` or ``onnx``) for ``requested`` (those or ``auto``) with ``precision``
    asked for, and why. ``auto``: ONNX Runtime on a CPU where it is installed (its fused kernels: faster than
    torch at every precision measured, docs/benchmarks.md), unless bf16 was asked for; torch elsewhere."""
    if device_type == "cuda":
        if requested == "onnx":
            raise ValueError("--runtime onnx runs on the CPU; on a GPU use --runtime torch (or auto)")
        return Choice("torch", "a GPU runs torch")
    if requested == "torch":
        return Choice("torch", "asked for torch")
    from .onnx_engine import available, require

    if requested == "onnx":
        require()
        if precision == "bf16":
            raise ValueError("the onnx engine runs fp32 or int8; bf16 runs on --runtime torch")
        return Choice("onnx", "asked for onnx")
    if precision == "bf16":
        return Choice("torch", "auto: bf16 was asked for, which runs on torch")
    if available():
        return Choice("onnx", "auto: onnxruntime is installed, and its fused kernels are faster than torch's on a CPU")
    return Choice("torch", "auto: onnxruntime is not installed (pip install 'corefix[onnx]' for the faster engine)")


def inference_precision(requested: str, device_type: str, engine: str = "torch") -> Choice:
    """The inference precision (``fp32``/``bf16``/``int8``) for ``requested`` (those or ``auto``) on
    ``engine`` and why."""
    import torch

    if engine == "onnx":
        if requested == "auto":
            products = cpu_int8_products()
            if products == "vnni":
                return Choice("int8", "auto: ONNX Runtime int8, this CPU has int8 dot products (VNNI or AMX)")
            if products == "avx2":
                return Choice("int8", "auto: ONNX Runtime int8 on AVX2 (no VNNI or AMX: 1.4x its fp32 here, "
                                      "measured in docs/benchmarks.md)")
            return Choice("fp32", "auto: ONNX Runtime fp32, this CPU has no AVX2 for int8 products")
        return Choice(requested, f"asked for {requested} on ONNX Runtime")

    if device_type == "cuda":
        if requested == "auto":
            ok = torch.cuda.is_bf16_supported()
            return Choice("bf16" if ok else "fp32", "auto: this GPU computes bf16" if ok else "auto: no bf16 on this GPU")
        if requested == "int8":
            raise ValueError("int8 quantization runs on the CPU only")
        return Choice(requested, f"asked for {requested}")
    chosen = _bf16_on_cpu(requested, Choice("fp32", "auto: this CPU has no native bf16, so fp32"),
                          f"--precision bf16 was asked for, but {EMULATED_BF16_COST}; use --precision auto or fp32")
    if requested == "int8" and not chosen:
        return Choice("int8", "asked for int8 on torch (its dynamic quantization: deprecated, and it costs accuracy; "
                              "the onnx engine's int8 keeps it)")
    return chosen or Choice(requested, f"asked for {requested}")


def _bf16_on_cpu(requested: str, without_native: Choice, emulated_warning: str) -> Choice | None:
    """``auto`` on a CPU (bf16 where it computes bf16 natively, else ``without_native``) and ``bf16`` where it
    only emulates it (warned); None for any other request."""
    native = cpu_native_bf16()
    if requested == "auto":
        return Choice("bf16", "auto: this CPU computes bf16 natively (AVX512-BF16 or AMX)") if native else without_native
    if requested == "bf16" and not native:
        _warn(emulated_warning)
        return Choice("bf16", "asked for bf16 on a CPU that emulates it")
    return None
