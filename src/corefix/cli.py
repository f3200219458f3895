"""The ``corefix`` command: make-dataset, train, evaluate, predict, adapt.

Each sub-command's arguments are documented in its ``--help``. Errors the user
can fix (a missing file, a bad config) end with a one-line message and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .model.decode import DECODINGS
from .model.options import AUTO_OVERLAP, RUNTIMES, GAP_MODES, MEASURES, PRECISIONS


class UserError(Exception):
    """An error with a message meant for the user (no traceback)."""


INFERENCE_FLAGS = {  # the flags of every command that runs a trained model, and their help
    "--batch-size": ({"type": int}, "windows per forward pass (default: 8 on CPU, 64 on GPU)"),
    "--threshold": ({"type": float}, "flag a word when P(inserted) >= this (default: the threshold chosen in training)"),
    "--overlap": ({"type": int}, f"tokens shared by neighbouring windows (default: the training stride, at most {AUTO_OVERLAP} with --precision auto; fewer is faster, a few words near window edges then see less context)"),
    "--precision": ({"choices": PRECISIONS, "default": "fp32"}, f"inference precision (default: fp32, auto for restore-corpus): fp32 exact; bf16 faster where the CPU computes it natively (AVX512-BF16, AMX) or on a GPU, much slower where it is emulated (a warning says so); int8 faster on CPU (on the onnx runtime at 0.1-0.8 points of span F1, measured in docs/benchmarks.md); auto: the fastest path for this hardware (int8 on ONNX Runtime where the CPU has AVX2, VNNI or AMX, else fp32 there; without onnxruntime bf16 where native, else fp32), with windows overlapping by at most {AUTO_OVERLAP} tokens"),
    "--runtime": ({"choices": RUNTIMES, "default": "auto"}, "what runs the network: onnx (ONNX Runtime, the onnx extra: exported once and cached beside the model), torch, or auto (onnx on a CPU where onnxruntime is installed, else torch; the default)"),
    "--article-gate": ({"type": float}, "an article keeps its spans only if one flagged word has P(inserted) >= this: fewer false flags in undamaged articles, some copies missed in damaged ones (0: no gate; default: the card's, none for the shipped model; docs/results.md measures --article-gate 0.9 --gate-density 0.5, calibration's choice for the shipped model, for a corpus of many undamaged articles)"),
    "--gate-density": ({"type": float}, "with --article-gate (or the card's gate): an article keeps its spans only if it holds at least this many spans per 100 words that reach the gate: undamaged articles draw a false flag or two, damaged ones many (0: one is enough; default: the card's; docs/results.md measures --article-gate 0.9 --gate-density 0.5: 1-3 %% of undamaged articles flagged)"),
    "--decoding": ({"choices": DECODINGS}, "read tags off the probabilities as the best valid IOB2 path, or word by word (default: the one chosen in training)"),
    "--gaps": ({"choices": GAP_MODES, "default": "drop"}, "where a removed copy had destroyed words: drop (delete the copy, the default), mark (put […] there) or fill (the destroyed words, where the gap head is confident above the threshold chosen on validation data; needs a model with span heads)"),
}


def _add_inference_options(p):
    """The options of every command that runs a trained model."""
    for flag, (settings, help_text) in INFERENCE_FLAGS.items():
        p.add_argument(flag, **settings, help=help_text)


def _inference_options(args):
    """The one InferenceOptions of a command, built from its flags (a bad value is a one-line error)."""
    from .model.options import InferenceOptions

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise UserError("--threshold must be between 0 and 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.overlap is not None and args.overlap < 0:
        raise UserError("--overlap must be 0 or more")
    if args.article_gate is not None and not 0.0 <= args.article_gate < 1.0:
        raise UserError("--article-gate must be at least 0 and below 1")
    if args.gate_density is not None and not 0.0 <= args.gate_density <= 100.0:
        raise UserError("--gate-density must be between 0 and 100 (spans per 100 words)")
    return InferenceOptions(batch_size=args.batch_size, threshold=args.threshold, precision=args.precision,
                            overlap=args.overlap, decoding=args.decoding, runtime=args.runtime,
                            article_gate=args.article_gate, gate_density=args.gate_density)


def _restore_options(args):
    """The RestoreOptions of a command, built from its flags."""
    from .model.options import RestoreOptions

    return RestoreOptions(gaps=args.gaps)


def _add_make_dataset(sub):
    p = sub.add_parser("make-dataset", help="damage clean news into train/validation/test JSONL")
    p.add_argument("--corpus", help="JSONL/CSV/Parquet file, folder of .txt, or hub dataset id")
    p.add_argument("--labelled", metavar="JSONL",
                   help="instead of damaging --corpus, split damage made by other code (records with id, text, "
                        "original and character spans) into the splits, adding words and tags")
    p.add_argument("--profile", help="with --labelled: the name the records' damage goes by (profile field)")
    p.add_argument("--out", help="output folder for train.jsonl, validation.jsonl, test.jsonl")
    p.add_argument("--config", default=None, help="simulator settings YAML (default: built-in seed profile)")
    p.add_argument("--seed", type=int, default=None, help="override the simulator seed")
    p.add_argument("--limit", type=int, default=None, help="use only the first N articles")
    p.add_argument("--samples-per-article", type=int, default=1, help="damaged copies per article")
    p.add_argument("--splits", nargs="+", default=["train", "validation", "test"],
                   choices=["train", "validation", "test"],
                   help="build only these splits (e.g. test: an evaluation set; the split of an article never changes)")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default="id")
    p.add_argument("--processes", type=int, default=1, help="spaCy worker processes")
    p.add_argument("--parse-cache", metavar="DIR",
                   help="keep spaCy's parse of each article in DIR and read it from there in later builds "
                        "(scripts/build_data.sh uses data/parses); the records are the same either way")
    p.add_argument("--stats", metavar="DIR", help="print the damage statistics of a built dataset and exit")
    p.set_defaults(func=_run_make_dataset)


def _run_make_dataset(args):
    from .data.dataset import folder_stats, format_stats

    if args.stats:
        per_split = folder_stats(args.stats)
        if not per_split:
            raise UserError(f"{Path(args.stats)}: no train/validation/test .jsonl files")
        print(format_stats(per_split))
        return
    if args.profile and not args.labelled:
        raise UserError("--profile names the damage of --labelled records; the simulator's records carry their own")
    if args.labelled:
        from .data.records import import_labelled

        if not args.out or args.corpus:
            raise UserError("make-dataset --labelled needs --out and no --corpus")
        if not Path(args.labelled).is_file():
            raise UserError(f"{args.labelled}: no such file")
        counts = import_labelled(args.labelled, args.out, args.profile, tuple(args.splits))
        print(json.dumps(counts))
        print(format_stats(folder_stats(args.out, [s for s in counts if counts[s]])))
        return
    if not args.corpus or not args.out:
        raise UserError("make-dataset needs --corpus and --out (or --stats DIR, or --labelled JSONL)")
    from .data.corpus import load_corpus
    from .data.dataset import build_dataset
    from .data.settings import SimulatorSettings
    from .data.simulate import Simulator

    settings = SimulatorSettings.from_yaml(args.config)
    if args.seed is not None:
        settings.seed = args.seed
    articles, report = load_corpus(args.corpus, args.text_field, args.id_field, limit=args.limit)
    print(report.summary(), file=sys.stderr)
    for p in report.problems:
        print(f"  skipped {p}", file=sys.stderr)
    if not articles:
        raise UserError(f"{args.corpus}: no usable articles")
    counts = build_dataset(articles, args.out, Simulator(settings), args.samples_per_article, args.processes,
                           splits=tuple(args.splits), parse_cache=args.parse_cache)
    print(json.dumps(counts))
    print(format_stats(folder_stats(args.out, [s for s in counts if counts[s]])))


def _add_train(sub):
    p = sub.add_parser("train", help="fine-tune the token classifier")
    p.add_argument("--config", required=True, help="training config YAML (configs/cpu-small.yaml, ...)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override config keys, e.g. max_steps=50")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if RUN_DIR/last exists")
    p.set_defaults(func=_run_train)


def _run_train(args):
    from .model.pipeline import train_model
    from .model.train import TrainConfig, Undertrained

    cfg = TrainConfig.from_yaml(args.config, args.overrides)
    try:
        best = train_model(cfg, resume=not args.no_resume)
    except Undertrained as e:
        print(json.dumps({"run_dir": cfg.run_dir, "best": e.best, "warning": str(e)}, indent=2))
        print(f"corefix train: undertrained: {e}; not calibrated, no span heads fitted", file=sys.stderr)
        raise SystemExit(3) from None
    print(json.dumps({"run_dir": cfg.run_dir, "best": best}, indent=2))


def _add_calibrate(sub):
    p = sub.add_parser("calibrate", help="choose a trained model's decoding and threshold on labelled articles")
    p.add_argument("--model", required=True, help="trained model directory (runs/NAME/best); its card is rewritten")
    p.add_argument("--data", default=None,
                   help="labelled JSONL (default: validation.jsonl of the data the model was trained on)")
    p.add_argument("--limit", type=int, default=200, help="use only the first N articles (default: 200, as training)")
    p.add_argument("--metric", choices=("f1", "f0.5"), default="f1",
                   help="what the chosen policy maximises: span F1, or F0.5 (precision counts twice: fewer genuine "
                        "words deleted, more copies left in)")
    p.add_argument("--only-first-mention-bias", action="store_true",
                   help="choose only the first-mention bias again, keeping the rest of the card's policy (its "
                        "flag rate's confidence bound wants more articles: e.g. --limit 800)")
    p.add_argument("--prefer-threshold", type=float, default=None, metavar="T",
                   help="keep threshold T (e.g. that of the model this one would replace) when its span score is "
                        "within one standard error of the best; otherwise the threshold within it that flags the "
                        "fewest clean articles, as without it")
    p.set_defaults(func=_run_calibrate)


def _run_calibrate(args):
    from .data.records import read_jsonl
    from .model.calibrate import calibrate
    from .model.network import check_model_dir

    model_dir = check_model_dir(args.model)
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    if args.prefer_threshold is not None and not 0.0 < args.prefer_threshold < 1.0:
        raise UserError(f"--prefer-threshold must be between 0 and 1, not {args.prefer_threshold}")
    if args.data:
        data = Path(args.data)
        if not data.is_file():
            raise UserError(f"{data}: no such file")
        records = read_jsonl(data)[: args.limit]
    else:  # the validation split of the data the model was trained on (every folder of a mixture)
        data, records = _training_split(model_dir, "validation", args.limit)
    if not records:
        raise UserError(f"{data}: no records")
    card = calibrate(model_dir, records, args.metric, args.only_first_mention_bias, args.prefer_threshold)
    info = card.calibration_info()
    print(json.dumps({"model": str(model_dir), "data": str(data), **info}, indent=2))


def _training_split(model_dir: Path, split: str, limit: int | None):
    """``(description, records)``: a split of the data the model was trained on (every folder of a mixture)."""
    from .model.pipeline import training_split

    try:
        return training_split(model_dir, split, limit)
    except FileNotFoundError as e:
        raise UserError(f"{e} (give the labelled articles with --data)") from None


def _add_fit_heads(sub):
    p = sub.add_parser("fit-heads", help="fit a trained model's span heads: learned pronouns and gap filling")
    p.add_argument("--model", required=True, help="trained model directory (runs/NAME/best); heads are written into it")
    p.add_argument("--data", nargs="+", default=None,
                   help="dataset folder(s) with train.jsonl and validation.jsonl (default: the model's training data)")
    p.add_argument("--train-limit", type=int, default=2000, help="training articles read (default: 2000)")
    p.add_argument("--validation-limit", type=int, default=300,
                   help="validation articles on which the fill threshold is chosen (default: 300)")
    p.add_argument("--pronoun-epochs", type=int, default=40, help="passes over the SUB examples (default: 40)")
    p.add_argument("--gap-epochs", type=int, default=10, help="passes over the DUP examples (default: 10)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_fit_heads)


def _run_fit_heads(args):
    from .data.records import read_records
    from .model.fit_heads import fit_heads
    from .model.network import check_model_dir

    model_dir = check_model_dir(args.model)
    for name in ("train_limit", "validation_limit", "pronoun_epochs", "gap_epochs"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    splits = {}
    for split, limit in (("train", args.train_limit), ("validation", args.validation_limit)):
        if args.data:
            try:
                splits[split] = read_records([Path(d) for d in args.data], split, limit)
            except FileNotFoundError as e:
                raise UserError(str(e)) from None
        else:
            splits[split] = _training_split(model_dir, split, limit)[1]
        if not splits[split]:
            raise UserError(f"no {split} records")
    heads = fit_heads(model_dir, splits["train"], splits["validation"], pronoun_epochs=args.pronoun_epochs,
                      gap_epochs=args.gap_epochs, seed=args.seed,
                      log=lambda msg: print(msg, file=sys.stderr))
    print(json.dumps({"model": str(model_dir), "fill_threshold": heads.fill_threshold,
                      "validation_pronoun": heads.info["validation_pronoun"]}, indent=2))


def _add_package_model(sub):
    p = sub.add_parser("package-model", help="write a trained model compactly, with its release record (as shipped)")
    p.add_argument("--model", default=None, help="trained model directory (runs/NAME/best)")
    p.add_argument("--out", required=True, help="where the packed model goes (src/corefix/default_model: the shipped one)")
    p.add_argument("--rescore", action="store_true",
                   help="no new model: record --eval's scores of the model already in --out in its card, replacing "
                        "the rows of the same test sets (say, a test set scored on more articles)")
    p.add_argument("--eval", nargs="+", default=None, metavar="DIR",
                   help="evaluation folders of the packed model (corefix evaluate --out DIR, several --data): "
                        "their test scores go into the card, and a shipped model is replaced only by one better "
                        "on every set it was scored on (span F1; on clean articles, no more of them flagged)")
    p.add_argument("--config", default=None, help="the training config, for the record")
    p.add_argument("--command", dest="made_by", default=None, help="the command that made the model, for the record")
    p.add_argument("--force", action="store_true",
                   help="replace a released model in --out even if the new one is not better on every test set")
    p.set_defaults(func=_run_package_model)


def _run_package_model(args):
    from .model.release import NotBetter, package_model, record_scores

    if args.rescore:
        if args.model or not args.eval:
            raise UserError("--rescore takes --eval DIR ... and --out, and no --model")
        try:
            card = record_scores(args.out, args.eval)
        except (OSError, ValueError) as e:
            raise UserError(str(e)) from None
        print(json.dumps({"out": args.out, "test_scores": card.release["test_scores"]}, indent=2))
        return
    if not args.model:
        raise UserError("package-model needs --model DIR (or --rescore)")
    try:  # package_model checks the model directory (a one-line error)
        card = package_model(args.model, args.out, args.eval, args.made_by, args.config, force=args.force)
    except NotBetter as e:
        raise UserError(str(e)) from None
    size = sum(f.stat().st_size for f in Path(args.out).iterdir() if f.is_file())
    print(json.dumps({"out": args.out, "bytes": size, "release": card.release}, indent=2))


def _add_average(sub):
    p = sub.add_parser("average", help="average the weights of models fine-tuned from one another (a model soup)")
    p.add_argument("--models", nargs="+", required=True, help="two or more trained model directories")
    p.add_argument("--out", required=True, help="the averaged model's directory (then calibrate it and fit its heads)")
    p.set_defaults(func=_run_average)


def _run_average(args):
    from .model.average import average_models
    from .model.network import check_model_dir

    dirs = [check_model_dir(m) for m in args.models]
    try:
        card = average_models(dirs, args.out)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(json.dumps({"out": args.out, "averaged_from": card.training["averaged_from"]}, indent=2))


def _add_adapt(sub):
    p = sub.add_parser("adapt", help="adapt a model to your own damaged corpus without labels (self-training)")
    p.add_argument("--corpus", required=True, nargs="+",
                   help="unlabelled damaged articles: .txt file(s), folder(s) of .txt, .jsonl with a 'text' field "
                        "(any gold fields in it are ignored)")
    p.add_argument("--model", default=None,
                   help="the model to adapt (runs/NAME/best) (default: the model shipped with corefix)")
    p.add_argument("--data", required=True, nargs="+",
                   help="simulated dataset folder(s) (train.jsonl, validation.jsonl) mixed into every round")
    p.add_argument("--test", required=True, nargs="+",
                   help="labelled JSONL file(s) of your own, held out from everything: they decide whether a round's "
                        "model is kept")
    p.add_argument("--out", default="runs/adapt", help="run folder: round-K/, adapt.json, best/ (default: runs/adapt)")
    p.add_argument("--config", default=None,
                   help="training config YAML (default: the training config the model's card records)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override training config keys, as corefix train takes them (e.g. batch_size=8)")
    p.add_argument("--rounds", type=int, default=1, help="pseudo-label and fine-tune this many times at most (default: 1)")
    p.add_argument("--steps", type=int, default=600, help="optimizer steps of each round (default: 600)")
    p.add_argument("--learning-rate", type=float, default=5e-5, help="learning rate of each round (default: 5e-5)")
    p.add_argument("--min-confidence", type=float, default=0.9,
                   help="words whose chosen tag is less probable than this are ignored by the loss (default: 0.9)")
    p.add_argument("--max-uncertain", type=float, default=0.05,
                   help="articles with more than this share of such words are left out (default: 0.05)")
    p.add_argument("--simulated-ratio", type=float, default=1.0,
                   help="simulated training articles per pseudo-labelled article in each round (default: 1)")
    p.add_argument("--keep-repeated-names", action="store_true",
                   help="train on the model's confident O for capitalised words that repeat an earlier word (by "
                        "default the loss ignores them: a copy the model missed hides there)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N articles of the corpus")
    p.add_argument("--text-field", default="text", help="JSONL field holding the article")
    p.add_argument("--id-field", default="id")
    p.set_defaults(func=_run_adapt)


def _run_adapt(args):
    from .model.adapt import AdaptJob, AdaptSettings, adapt

    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    settings = AdaptSettings(rounds=args.rounds, steps=args.steps, learning_rate=args.learning_rate,
                             min_confidence=args.min_confidence, max_uncertain=args.max_uncertain,
                             simulated_ratio=args.simulated_ratio,
                             ignore_repeated_names=not args.keep_repeated_names)
    job = AdaptJob(corpus=args.corpus, data=args.data, test=args.test, model=args.model, out=args.out,
                   config=args.config, overrides=args.overrides, settings=settings, limit=args.limit,
                   text_field=args.text_field, id_field=args.id_field)
    report = adapt(job, log=lambda msg: print(f"corefix adapt: {msg}", file=sys.stderr))
    print(json.dumps({"start_scores": report["start_scores"], "decisions": [r["decision"] for r in report["rounds"]],
                      "chosen": report["chosen"], "chosen_scores": report["chosen_scores"], "best": report["best"],
                      "report": str(Path(args.out) / "adapt.json")}, indent=2))


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="span F1 and restoration WER of a model, beside the baselines")
    p.add_argument("--model", default=None, help="trained model directory (runs/NAME/best) (default: the model shipped with corefix)")
    p.add_argument("--data", nargs="+", default=None,
                   help="labelled JSONL file(s) (e.g. data/bbc-seed/test.jsonl data/us-seed/test.jsonl)")
    p.add_argument("--quotes", default=None, metavar="MARKDOWN",
                   help="unlabelled real damage: flag every blockquote of a markdown file (e.g. ../shared/CORRUPTION.md) "
                        "and report the first-mention flag rate")
    p.add_argument("--out", default=None,
                   help="metrics JSON path (report.md and plots.png go beside it); with several --data, a folder "
                        "that gets one sub-folder per data file")
    p.add_argument("--limit", type=int, default=None, help="score only the first N articles of each file")
    p.add_argument("--baselines-only", action="store_true", help="score the input, rule baseline and oracle only")
    _add_inference_options(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    from .model.reports import evaluate_files, probe_quotes

    if not args.data and not args.quotes:
        raise UserError("evaluate needs --data FILE ... (or --quotes MARKDOWN)")
    files = [Path(d) for d in args.data or []]
    for data in files:
        if not data.is_file():
            raise UserError(f"{data}: no such file")
    restorer = None
    if not args.baselines_only:
        from .model.predict import Restorer

        restorer = Restorer.from_pretrained(args.model, _inference_options(args), _restore_options(args))
    if args.quotes:
        if restorer is None:
            raise UserError("--quotes needs --model DIR")
        if not Path(args.quotes).is_file():
            raise UserError(f"{Path(args.quotes)}: no such file")
        probe_quotes(Path(args.quotes), restorer.detector)
    evaluate_files(files, restorer, args.out, args.limit, args.model)


def _add_predict(sub):
    p = sub.add_parser("predict", help="find inserted spans in damaged articles and restore them")
    p.add_argument("--model", default=None, help="trained model directory (runs/NAME/best) (default: the model shipped with corefix)")
    p.add_argument("--input", required=True, nargs="+",
                   help=".txt file(s), folder(s) of .txt, .jsonl with a 'text' field, or - for standard input")
    p.add_argument("--output", default=None,
                   help="output file (default: standard output); a folder writes one file per article")
    p.add_argument("--format", choices=("text", "jsonl", "html"), default="text")
    _add_inference_options(p)
    p.add_argument("--text-field", default="text", help="JSONL field holding the article")
    p.add_argument("--id-field", default="id")
    p.set_defaults(func=_run_predict)


def _run_predict(args):
    from .data.corpus import read_inputs
    from .model.network import ModelDirError, check_model_dir
    from .model.onnx_engine import OnnxEngineError
    from .model.predict import Restorer
    from .model.render import output_targets, write_outputs

    failures = []

    def complain(msg):
        failures.append(msg)
        print(f"corefix predict: error: {msg}", file=sys.stderr)

    check_model_dir(args.model)
    options = _inference_options(args)
    articles, files = read_inputs(args.input, args.text_field, args.id_field, complain, stdin=sys.stdin.buffer)
    if not articles:
        raise UserError("no readable article in the input" if failures else "the input holds no article")
    inputs = {f.resolve() for f in files}
    targets, per_article = output_targets(args.output, [a.id for a in articles], args.format)
    for t in targets:
        if t.resolve() in inputs:
            raise UserError(f"{t}: output would overwrite an input file")
    try:
        restorer = Restorer.from_pretrained(args.model, options, _restore_options(args))
    except (ModelDirError, OnnxEngineError):
        raise
    except Exception as e:  # a corrupt config or weights file: say which directory
        raise UserError(f"{args.model}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    results = restorer.restore_many([a.text for a in articles], [a.id for a in articles],
                                    progress=len(articles) > 1 and sys.stderr.isatty() or len(articles) > 20)
    write_outputs(results, targets, args.format, per_article)
    n_spans = sum(len(r.spans) for r in results)
    print(f"restored {len(results)} articles ({n_spans} spans)" + (f", {len(failures)} inputs failed" if failures else ""),
          file=sys.stderr)
    if failures:
        raise SystemExit(1)


def _add_benchmark(sub):
    p = sub.add_parser("benchmark", help="prediction/training throughput and memory against plain baselines")
    p.add_argument("--model", default=None, help="trained model directory (default: the model shipped with corefix)")
    p.add_argument("--data", default="data/bbc-seed/test.jsonl",
                   help="labelled JSONL to read articles from (built-in sample text when missing)")
    p.add_argument("--quick", action="store_true", help="a small run (under a minute) that checks everything works")
    p.add_argument("--only", nargs="+", choices=MEASURES, default=None, help="run only these measurements")
    p.add_argument("--device", default="cpu",
                   help="cuda: measure prediction on the GPU (the pipeline, corefix's torch path and its batched "
                        "bf16 path, with the share of the card's bf16 peak) instead of on the CPU")
    p.add_argument("--out", default="runs/benchmark.json", help="where to write the JSON figures")
    p.set_defaults(func=_run_benchmark)


def _run_benchmark(args):
    from .model.benchmark import format_summary, run_benchmark

    result = run_benchmark(args.model, args.data, args.quick, args.only, args.device)
    print(format_summary(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


def _add_restore_corpus(sub):
    p = sub.add_parser("restore-corpus", help="restore a whole corpus into shards, resumably and in parallel")
    p.add_argument("--model", default=None, help="trained model directory (runs/NAME/best) (default: the model shipped with corefix)")
    p.add_argument("--input", required=True, help="JSONL/CSV/Parquet file, folder of .txt, or hub dataset id")
    p.add_argument("--output", required=True, help="output folder for shard-NNNNN.{jsonl,parquet} and summary.json")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default="id")
    p.add_argument("--num-workers", type=int, default=None,
                   help="local engine: worker processes (each loads the model once; default 1)")
    p.add_argument("--shard-size", type=int, default=500,
                   help="records per output shard, in input order (both engines; a rerun must keep it)")
    p.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    p.add_argument("--split", default="train", help="split of a hub dataset")
    p.add_argument("--max-chars", type=int, default=None,
                   help="a record whose text is longer is not restored but named as failed (default 1,000,000: "
                        "restoring takes memory in proportion to the text; 0: no limit)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: processes on this machine (default); ray: actors on a local or remote Ray "
                        "cluster (pip install -e \".[ray]\"); both resume a killed run when rerun and write the "
                        "same shards")
    r = p.add_argument_group("ray engine (--engine ray)")
    r.add_argument("--address", default=None,
                   help="Ray cluster to join: auto or ray://HOST:PORT (default: start a local Ray for the run)")
    r.add_argument("--num-actors", type=int, default=None,
                   help="restoring actors, each loads the model once (default 1)")
    r.add_argument("--gpus-per-actor", type=float, default=None, help="GPUs of each actor (default 0: CPU)")
    r.add_argument("--cpus-per-actor", type=float, default=None,
                   help="CPUs (and torch threads) of each actor (default 1)")
    _add_inference_options(p)
    p.set_defaults(func=_run_restore_corpus, precision="auto")  # the bulk path: the fastest here (docs/benchmarks.md)


def _run_restore_corpus(args):
    from .model.restore_corpus import MAX_CHARS, CorpusJob, restore_corpus

    src = Path(args.input)
    if src.exists() and Path(args.output).resolve() == src.resolve():
        raise UserError("--output must differ from --input")
    ray_flags = {"--address": args.address, "--num-actors": args.num_actors, "--gpus-per-actor": args.gpus_per_actor,
                 "--cpus-per-actor": args.cpus_per_actor}
    if args.engine == "local" and any(v is not None for v in ray_flags.values()):
        raise UserError(f"{', '.join(k for k, v in ray_flags.items() if v is not None)}: only with --engine ray")
    if args.engine == "ray" and args.num_workers is not None:
        raise UserError("--num-workers is for the local engine; with --engine ray use --num-actors")
    job = CorpusJob(args.model, args.input, args.output, args.text_field, args.id_field,
                    shard_size=args.shard_size, num_workers=1 if args.num_workers is None else args.num_workers,
                    format=args.format,
                    split=args.split, options=_inference_options(args), restoration=_restore_options(args),
                    max_chars=MAX_CHARS if args.max_chars is None else args.max_chars or None)
    if args.engine == "ray":
        from .model.restore_corpus_ray import RayNotInstalled, RayOptions, restore_corpus_ray

        options = RayOptions(address=args.address, num_actors=1 if args.num_actors is None else args.num_actors,
                             gpus_per_actor=args.gpus_per_actor or 0.0,
                             cpus_per_actor=1.0 if args.cpus_per_actor is None else args.cpus_per_actor)
        try:
            summary = restore_corpus_ray(job, options)
        except RayNotInstalled as e:
            raise UserError(str(e)) from None
    else:
        summary = restore_corpus(job)
    failures = summary.pop("failures")
    print(json.dumps(summary, indent=2))
    for f in failures[:50]:
        print(f"failed: {f['record']}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} records failed (listed in {args.output.rstrip('/')}/summary.json)", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corefix", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_make_dataset, _add_train, _add_calibrate, _add_fit_heads, _add_package_model, _add_evaluate,
                _add_predict, _add_benchmark, _add_restore_corpus, _add_adapt, _add_average):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    import warnings

    warnings.formatwarning = lambda message, *_a, **_k: f"corefix {args.command}: warning: {message}\n"
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from .data.corpus import CorpusError

    try:
        args.func(args)
    except (UserError, CorpusError, FileNotFoundError, ValueError, OSError) as e:
        print(f"corefix {args.command}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
