"""Working out of the box: precision chosen by the hardware, typed overrides, an honest time budget,
compact model storage."""
import json
import warnings

import pytest

from corefix.cli import main
from corefix.data.records import read_jsonl
from corefix.model import precision
from corefix.model.card import ModelCard
from corefix.model.inference import Detector, ModelWarning
from corefix.model.network import ModelDirError, load_trained, save_compact
from corefix.model.options import InferenceOptions
from corefix.model.pipeline import train_model
from corefix.model.predict import Restorer
from corefix.model.train import TrainConfig, undertrained_warning


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: False)


@pytest.fixture
def cpu_with_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: True)


def test_auto_is_fp32_on_a_cpu_without_native_bf16(cpu_without_bf16):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns
        choice = precision.training_precision("auto", "cpu")
        assert choice.precision == "no" and "no native bf16" in choice.reason
        assert precision.inference_precision("auto", "cpu").precision == "fp32"  # on torch (the default runtime arg)


def test_auto_is_bf16_on_a_cpu_with_native_bf16(cpu_with_bf16):
    assert precision.training_precision("auto", "cpu").precision == "bf16"
    assert precision.inference_precision("auto", "cpu").precision == "bf16"


def test_asking_for_emulated_bf16_warns_with_the_measured_cost(cpu_without_bf16):
    with pytest.warns(precision.PrecisionWarning, match="emulated.*20x slower"):
        assert precision.training_precision("bf16", "cpu").precision == "bf16"
    with pytest.warns(precision.PrecisionWarning, match="--precision auto or fp32"):
        assert precision.inference_precision("bf16", "cpu").precision == "bf16"


def test_native_bf16_asked_for_explicitly_does_not_warn(cpu_with_bf16):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision.training_precision("bf16", "cpu").precision == "bf16"
        assert precision.training_precision("no", "cpu").precision == "no"


def test_fp16_training_on_a_cpu_and_unknown_modes_are_errors():
    with pytest.raises(ValueError, match="needs a GPU"):
        precision.training_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        precision.training_precision("fp8", "cpu")


def test_the_capability_probe_answers_a_bool():
    assert isinstance(precision.cpu_native_bf16(), bool)
    assert "bf16" in precision.cpu_name()


def test_detector_runs_the_precision_auto_chose(tiny_model, cpu_without_bf16):
    best, _ = tiny_model
    det = Detector.load(best, InferenceOptions(precision="auto", runtime="torch"))
    assert det.precision.precision == "fp32"


def test_shipped_training_configs_choose_precision_by_the_hardware():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")):
        if path.name.startswith("simulate"):
            continue
        assert TrainConfig.from_yaml(path).mixed_precision == "auto", path.name


def test_overrides_are_read_as_their_settings_type(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("batch_size: 4\nmixed_precision: auto\n")
    cfg = TrainConfig.from_yaml(f, ["mixed_precision=no", "learning_rate=2e-4", "max_steps=50", "case_feature=false",
                                    "eval_docs=none", "exclude_profiles=resolvers", "data_dir=[data/a, data/b]",
                                    "run_dir=runs/007"])
    assert cfg.mixed_precision == "no"
    assert cfg.learning_rate == 2e-4 and isinstance(cfg.learning_rate, float)
    assert cfg.max_steps == 50 and cfg.case_feature is False and cfg.eval_docs is None
    assert cfg.exclude_profiles == ["resolvers"] and cfg.data_dir == ["data/a", "data/b"]
    assert cfg.run_dir == "runs/007"


@pytest.mark.parametrize("override, fragment", [
    ("nonsense=1", "unknown training setting"), ("max_steps=fifty", "max_steps must be a number"),
    ("max_steps=2.5", "whole number"), ("case_feature=perhaps", "true or false"),
    ("mixed_precision=fp8", "mixed_precision must be one of"), ("max_steps", "not KEY=VALUE")])
def test_a_bad_override_is_a_one_line_error(tmp_path, override, fragment):
    f = tmp_path / "c.yaml"
    f.write_text("batch_size: 4\n")
    with pytest.raises(ValueError, match=fragment) as e:
        TrainConfig.from_yaml(f, [override])
    assert "\n" not in str(e.value)


def test_a_yaml_boolean_in_a_text_setting_says_to_quote_it(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("mixed_precision: no\n")
    with pytest.raises(ValueError, match="quote it"):
        TrainConfig.from_yaml(f)


def test_the_train_command_takes_mixed_precision_no(tiny_encoder, tiny_data, tmp_path, capsys):
    main(["train", "--config", _tiny_config(tmp_path, tiny_encoder, tiny_data), "mixed_precision=no", "max_steps=2"])
    card = ModelCard.load(tmp_path / "run" / "best")
    assert card.training["precision"] == "no" and card.training["steps_done"] == 2
    assert card.training["stopped_by"] == "planned steps" and card.warning is None
    assert "precision: no" in capsys.readouterr().out


def _tiny_config(tmp_path, encoder, data) -> str:
    f = tmp_path / "tiny.yaml"
    f.write_text(json.dumps({"model": encoder, "data_dir": str(data), "run_dir": str(tmp_path / "run"),
                             "max_length": 64, "stride": 16, "batch_size": 8, "learning_rate": 5e-3,
                             "eval_every": 50, "eval_docs": 3, "calibration_docs": 3, "log_every": 1}))
    return str(f)


def test_undertrained_warning_only_when_the_budget_cut_most_of_the_run():
    assert "step 30 of 1800 (2 %" in undertrained_warning(30, 1800, out_of_time=True)
    assert undertrained_warning(1700, 1800, out_of_time=True) is None  # 94 %: trained
    assert undertrained_warning(30, 1800, out_of_time=False) is None  # stopped by its planned steps


def test_a_run_its_budget_cut_short_says_so_and_stops(tiny_encoder, tiny_data, tmp_path, capsys):
    config = _tiny_config(tmp_path, tiny_encoder, tiny_data)
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", config, "max_steps=1000", "max_minutes=0.00001", "heads_train_docs=6"])
    assert e.value.code == 3
    captured = capsys.readouterr()
    assert "WARNING" in captured.out and "undertrained" in captured.err
    best = tmp_path / "run" / "best"
    card = ModelCard.load(best)
    assert card.training["steps_done"] < 1000 and card.training["stopped_by"] == "time budget"
    assert "undertrained" in card.warning
    assert not card.heads and not card.calibration  # neither calibrated nor given heads
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("warning" in r for r in log)
    with pytest.warns(ModelWarning, match="undertrained"):
        Detector.load(best)
    art = tmp_path / "a.txt"
    art.write_text("Mr. Blair said he would go.", encoding="utf-8")
    with pytest.warns(ModelWarning, match="undertrained"):  # the CLI prints it as one line on stderr
        main(["predict", "--model", str(best), "--input", str(art)])


@pytest.fixture(scope="module")
def frozen_model(tmp_path_factory, tiny_encoder, tiny_data):
    """A tiny model trained with frozen word-piece embeddings, as the shipped model is."""
    run = tmp_path_factory.mktemp("frozen-run")
    train_model(TrainConfig(model=tiny_encoder, data_dir=str(tiny_data), run_dir=str(run), max_length=64, stride=16,
                            batch_size=8, learning_rate=5e-3, max_steps=6, eval_every=6, eval_docs=3, calibration_docs=3,
                            freeze_word_embeddings=True, heads_train_docs=6, heads_validation_docs=3), progress=False)
    return run / "best"


def test_compact_storage_keeps_only_what_training_changed(frozen_model, tiny_data, tmp_path):
    out = tmp_path / "compact"
    weights = save_compact(frozen_model, out)
    assert list(weights["from_base"]) == ["bert.embeddings.word_embeddings.weight"]
    assert not (out / "tokenizer.json").exists() and (out / "heads.safetensors").is_file()
    full = sum(f.stat().st_size for f in frozen_model.glob("model.safetensors"))
    assert (out / "model.safetensors").stat().st_size < full / 2
    texts = [r["text"] for r in read_jsonl(tiny_data / "validation.jsonl")][:3]
    a, b = Detector.load(frozen_model), Detector.load(out)
    pa, pb = a.predict(texts), b.predict(texts)
    for x, y in zip(pa, pb):
        assert abs(x.probs - y.probs).max() < 2e-2  # float16 storage
    assert ModelCard.load(out).needs_reader == 4 and Restorer.from_pretrained(out).heads is not None


def test_compact_model_refuses_a_different_base_encoder(frozen_model, tmp_path):
    out = tmp_path / "compact"
    save_compact(frozen_model, out)
    card = json.loads((out / "corefix.json").read_text())
    card["weights"]["from_base"]["bert.embeddings.word_embeddings.weight"]["sha256"] = "0" * 64
    (out / "corefix.json").write_text(json.dumps(card))
    with pytest.raises(ModelDirError, match="different"):
        load_trained(out)


def test_package_model_names_itself_in_errors_and_records_the_command(frozen_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["package-model", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--command", "x"])
    assert e.value.code == 2 and "corefix package-model: error:" in capsys.readouterr().err
    main(["package-model", "--model", str(frozen_model), "--out", str(tmp_path / "o"), "--command", "bash make.sh"])
    assert ModelCard.load(tmp_path / "o").release["command"] == "bash make.sh"


def test_rescore_replaces_the_card_rows_of_the_sets_scored_again_and_keeps_the_weights(frozen_model, tmp_path, capsys):
    out = tmp_path / "o"
    main(["package-model", "--model", str(frozen_model), "--out", str(out)])
    weights = (out / "model.safetensors").read_bytes()

    def scored(folder, model_dir, articles, flagged):
        (folder / "clean-test").mkdir(parents=True)
        model = {"spans": {"micro": {"support": 0}}, "words": {"f1": 0.0}, "first_mention_flag_rate": 0.0,
                 "wer": 0.01, "clean_flag_rate": flagged, "clean_articles": articles}
        (folder / "clean-test" / "metrics.json").write_text(json.dumps(
            {"data": "data/clean/test.jsonl", "articles": articles, "model": model, "model_dir": model_dir,
             "input": {"wer": 0.0}, "oracle": {"wer": 0.0}}))
        return folder

    main(["package-model", "--out", str(out), "--rescore", "--eval", str(scored(tmp_path / "e1", str(out), 100, 0.8))])
    main(["package-model", "--out", str(out), "--rescore", "--eval", str(scored(tmp_path / "e2", str(out), 689, 0.7))])
    release = ModelCard.load(out).release
    assert release["test_scores"]["clean-test"]["articles"] == 689
    assert release["test_scores"]["clean-test"]["clean_articles_flagged"] == 0.7
    assert [r["sets"] for r in release["rescored"]] == [["clean-test"], ["clean-test"]]
    assert (out / "model.safetensors").read_bytes() == weights
    capsys.readouterr()
    for bad in (["--rescore", "--eval", str(scored(tmp_path / "e3", str(frozen_model), 689, 0.1))],  # another model
                ["--rescore", "--eval", str(scored(tmp_path / "e4", None, 689, 0.1))],  # the shipped one
                ["--rescore"], ["--rescore", "--model", str(frozen_model), "--eval", str(tmp_path / "e2")]):
        with pytest.raises(SystemExit) as e:
            main(["package-model", "--out", str(out), *bad])
        assert e.value.code == 2 and "corefix package-model: error:" in capsys.readouterr().err
    assert ModelCard.load(out).release["test_scores"]["clean-test"]["clean_articles_flagged"] == 0.7
    with pytest.raises(SystemExit) as e:  # --out holds no model: nothing is written there
        main(["package-model", "--out", str(tmp_path / "none"), "--rescore", "--eval", str(tmp_path / "e2")])
    assert e.value.code == 2 and "model directory not found" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
