"""The package's structure holds: layers import downwards only, no private names cross modules,
inference never loads the simulator, and docs/architecture.md shows the imports as they are."""
import graphlib
from pathlib import Path

from corefix.architecture import LAYERS, graph, imports, layer_of, mermaid, modules, reachable

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
INFERENCE = ("model.predict", "model.restore", "model.pronouns", "model.restore_corpus", "model.inference",
             "model.decode", "model.heads")
SIMULATOR = {"data.simulate", "data.mentions", "data.settings", "data.dataset", "data.parses"}
RESTORATION = {"model.predict", "model.restore", "model.pronouns", "model.heads", "nlp"}


def test_every_import_points_to_the_same_or_a_lower_layer():
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = [(m, t) for m, targets in graph().items() for t in targets if rank[layer_of(t)] > rank[layer_of(m)]]
    assert not upward
    assert all(layer_of(m) in rank for m in modules())


def test_modules_form_no_cycle():
    list(graphlib.TopologicalSorter(graph()).static_order())  # raises CycleError on a cycle


def test_no_module_imports_a_private_name_of_another():
    private = [(m, t, n) for m, p in modules().items() for t, names in imports(m, p) for n in names
               if n.startswith("_") and t != m]
    assert not private


def test_inference_does_not_reach_the_simulator():
    g = graph()
    for m in INFERENCE:
        assert not reachable(m, g) & SIMULATOR, m


def test_the_detector_reaches_nothing_of_restoration_or_spacy():
    assert not reachable("model.inference", graph()) & RESTORATION


def test_the_architecture_page_holds_the_current_diagram():
    text = DOC.read_text(encoding="utf-8")
    assert "```mermaid\n" + mermaid() + "\n```" in text, "docs/architecture.md is stale: run python -m corefix.architecture"


def test_a_planted_upward_import_is_caught(tmp_path, monkeypatch):
    """The layer check can fail: a foundation module importing the model half is reported."""
    import corefix.architecture as arch

    pkg = tmp_path / "corefix"
    (pkg / "model").mkdir(parents=True)
    (pkg / "words.py").write_text("from .model.decode import x\n")
    (pkg / "model" / "decode.py").write_text("x = 1\n")
    monkeypatch.setattr(arch, "PACKAGE", pkg)
    g = arch.graph()
    assert g["words"] == {"model.decode"} and layer_of("words") == "foundation"
