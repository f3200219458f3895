"""tools/avx2_only: a process run through it sees a CPU with AVX2 but no AVX-512 or VNNI, and corefix's
hardware choice follows what that process's CPUID says (as ONNX Runtime's kernels do)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAGS = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""

pytestmark = pytest.mark.skipif(
    "cpuid_fault" not in FLAGS.split() or " avx2" not in FLAGS or shutil.which("gcc") is None,
    reason="needs gcc and a CPU with AVX2 and CPUID faulting (cpuid_fault in /proc/cpuinfo)")

PROBE = ("import torch; from corefix.model import precision as p; "
         "print(torch.backends.cpu.get_cpu_capability(), p.cpu_int8_products(), p.cpu_native_bf16(), "
         "p.inference_precision('auto', 'cpu', 'onnx').precision)")


ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def test_the_masked_process_picks_avx2_kernels_and_auto_follows():
    out = subprocess.run(["bash", str(ROOT / "tools/avx2_only/run.sh"), sys.executable, "-c", PROBE],
                         capture_output=True, text=True, timeout=300, check=True, env=ENV).stdout.split()
    assert out == ["AVX2", "avx2", "False", "int8"]


def test_a_real_fault_still_kills_the_process():
    crash = "import ctypes; ctypes.string_at(0)"  # a read of address 0: SIGSEGV, not a CPUID
    run = subprocess.run(["bash", str(ROOT / "tools/avx2_only/run.sh"), sys.executable, "-c", crash],
                         capture_output=True, text=True, timeout=300, env=ENV)
    assert run.returncode != 0 and run.returncode != 3
