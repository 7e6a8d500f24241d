"""The ``xner`` command line: a thin typer layer over the public API.

Every command parses options, calls one library function and prints its result.
User errors (:class:`xner.errors.XnerError`) become one ``error: ...`` line and
exit status 2 instead of a traceback.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import functools
import json
import math
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from xner.decoding import DEFAULT_DECODING
from xner.errors import XnerError, one_line
from xner.io import atomic_file, atomic_write
from xner.languages import list_languages, study_pairs
from xner.options import DEFAULT_STUDENT, DistillationOptions, TrainingOptions
from xner.data.datasets import SPLITS, dataset_labels, load_split
from xner.data.rawfiles import TEXT_FIELDS
from xner.data.stats import data_stats, file_stats, summary_line, table_row

app = typer.Typer(
    name="xner",
    help="Cross-lingual NER transfer to lower-resource languages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect and validate NER data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

F = TypeVar("F", bound=Callable[..., object])


def user_errors(func: F) -> F:
    """Turn an XnerError raised by a command into one line on stderr and exit 2.

    So do the system's refusals no check foresaw (a full disk or a permission: ``OSError``;
    a result store the disk could not grow: ``sqlite3.Error``): a line, not a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except XnerError as err:
            message = str(err)
        except OSError as err:
            message = f"{err.filename}: {err.strerror}" if err.filename and err.strerror else one_line(err)
        except sqlite3.Error as err:
            message = (f"result store: {err}; every finished run is kept, fix the cause and run the same "
                       "command again")
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def option(model: type, name: str, *flags: str, default: Any = ...) -> Any:
    """A typer option whose default and help text are an options model's field (one source:
    :mod:`xner.options`); ``default`` overrides it where a command has its own (students)."""
    field = model.model_fields[name]
    return typer.Option(field.default if default is ... else default, *(flags or (f"--{name.replace('_', '-')}",)),
                        help=field.description)


def student_option(name: str) -> Any:
    """A training option of ``xner distill``: the default student's value."""
    return option(TrainingOptions, name, default=getattr(DEFAULT_STUDENT, name))


class OutputFormat(str, enum.Enum):
    """How a command prints its rows: a rich table, CSV or a JSON list of objects."""

    table = "table"
    csv = "csv"
    json = "json"


def print_rows(rows: Sequence[dict[str, Any]], fmt: OutputFormat, title: str = "") -> None:
    """Print flat dict rows (same keys in every row) in the chosen format. A missing value (None
    or NaN, e.g. a distance URIEL lacks) is ``null`` in JSON (NaN is not JSON) and empty otherwise."""
    rows = [{key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
            for row in rows]
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(list(rows), indent=2, ensure_ascii=False))
        return
    columns = list(rows[0]) if rows else []
    if fmt is OutputFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    Console().print(table)


def _repair_option() -> Any:
    """``--repair/--strict`` of the commands that read labelled data."""
    return typer.Option(None, "--repair/--strict", help="Repair IOB1 starts (default: as the dataset declares).")


@app.command("languages")
@user_errors
def languages_command(
    pairs: bool = typer.Option(False, "--pairs", help="List the study's 13 HRL->LRL pairs."),
    family: str | None = typer.Option(None, "--family", help="Only this language family."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
) -> None:
    """List the language registry (codes, family, script, train sizes) or the study pairs."""
    if pairs:
        rows = [pair.describe() for pair in study_pairs(family)]
        print_rows(rows, fmt, title="Reference study pairs (HRL -> LRL)")
    else:
        rows = [dataclasses.asdict(lang) for lang in list_languages(family)]
        print_rows(rows, fmt, title="Languages")


@data_app.command("stats")
@user_errors
def data_stats_command(
    targets: list[str] = typer.Argument(..., help="Language codes (ISO 639-1/3) or files."),
    dataset: str = typer.Option("wikiann", "--dataset", help="wikiann, masakhaner2 or a folder."),
    data_dir: str | None = typer.Option(
        None, "--data-dir", help="Local data root (default $XNER_DATA_DIR; unset: the HF hub)."
    ),
    splits: list[str] = typer.Option(list(SPLITS), "--split", help="Split(s) to count."),
    repair: bool | None = _repair_option(),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
) -> None:
    """Sentences, tokens, entities per type and mean length, per language and split (or file)."""
    rows = data_stats(targets, dataset=dataset, data_dir=data_dir, splits=splits, repair=repair)
    shown = [table_row(row) for row in rows] if fmt is OutputFormat.table else rows
    print_rows(shown, fmt, title="corpus statistics")


@data_app.command("validate")
def data_validate_command(
    files: list[str] = typer.Argument(..., help="Token-per-line files (.gz allowed)."),
    repair: bool = typer.Option(False, "--repair", help="Convert IOB1 to IOB2 instead of failing."),
    labels: str | None = typer.Option(
        None, "--labels", help="Check tags against this dataset's label set (default: any IOB2)."
    ),
    line_format: str = typer.Option("auto", "--line-format", help="Force a line format."),
) -> None:
    """Check files: print OK with counts per file, or its first error; exit 2 on any error."""
    failed = False
    for path in files:
        try:
            label_set = dataset_labels(labels) if labels else None
            row = file_stats(path, labels=label_set, repair=repair, format=line_format)
            typer.echo(summary_line(row))
        except XnerError as err:
            typer.echo(f"error: {err}", err=True)
            failed = True
    if failed:
        raise typer.Exit(2)


@data_app.command("sentences")
@user_errors
def data_sentences_command(
    inputs: list[str] = typer.Argument(..., help="Text files (a document or paragraph a line), folders, .gz, JSONL, TSV/CSV, WikiExtractor output."),
    lang: str = typer.Option(..., "--lang", help="Language of the text (the target whose test sets are kept out)."),
    out: str = typer.Option(..., "--out", help="Pool file to write: one tokenized sentence a line."),
    dataset: str = typer.Option("wikiann", "--dataset", help="Labelled dataset whose --exclude splits are kept out."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Local data root (default $XNER_DATA_DIR)."),
    exclude: str = typer.Option("dev,test", "--exclude", help="Splits of --lang in --dataset the pool must not contain ('' = none)."),
    overlap: str = typer.Option("", "--overlap", help="Splits the pool is used with (train): their sentences are dropped as duplicates."),
    text_field: str = typer.Option(",".join(TEXT_FIELDS), "--text-field", help="JSONL/TSV fields read as text, comma-separated."),
    min_tokens: int = typer.Option(3, "--min-tokens"),
    max_tokens: int = typer.Option(100, "--max-tokens"),
    near_leak: float = typer.Option(0.5, "--near-leak", help="5-gram Jaccard from which a sentence counts as an excluded one."),
    near_dup: float = typer.Option(0.8, "--near-dup", help="5-gram Jaccard from which pool sentences are duplicates."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format"),
) -> None:
    """Raw text to an unlabeled pool: split, tokenize, filter, deduplicate, keep test sets out; count every step."""
    from xner.data.rawpool import build_pool, check_output, write_pool

    check_output(out, inputs)
    splits, also = _names(exclude), _names(overlap)

    def labelled(names: list[str]) -> list:
        return [s for split in names for s in load_split(lang, split, dataset=dataset, data_dir=data_dir)]

    sentences, counts = build_pool(inputs, lang, exclude=labelled(splits), overlap=labelled(also), min_tokens=min_tokens,
                                   max_tokens=max_tokens, near_leak=near_leak, near_dup=near_dup, text_fields=_names(text_field))
    write_pool(out, sentences)
    kept_out = f"{counts.leaked_exact + counts.leaked_near} leaked from {dataset} {lang} {'+'.join(splits)}" if splits else "no splits excluded"
    print_rows(counts.rows(), fmt, title="raw text -> pool")
    typer.echo(f"wrote {out}: {counts.kept} sentences ({kept_out})", err=True)


def _names(text: str) -> list[str]:
    """A comma-separated option as a list of its non-empty, stripped items."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _measure_rows(row: dict[str, Any]) -> list[dict[str, str]]:
    """One flat result as ``measure | value`` rows, floats to two decimals (table output)."""
    return [{"measure": k, "value": f"{v:.2f}" if isinstance(v, float) else str(v)} for k, v in row.items()]


@app.command("perturb")
@user_errors
def perturb_command(
    source: str = typer.Argument(..., metavar="IN", help="A token-per-line file, or LANG:SPLIT (e.g. de:test)."),
    out: str = typer.Argument(..., metavar="OUT", help="File to write; the edit records go to OUT.edits.jsonl."),
    kind: str = typer.Option(..., "--kind", help="unseen-entity|unseen-context|unseen-both|mask-entity|"
                             "random-context|swap-entity, a versioned name (mask-entity.v1) or a+b."),
    rate: float = typer.Option(1.0, "--rate", help="Share of eligible tokens/mentions edited (0 = identity)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (one generator per sentence)."),
    lang: str | None = typer.Option(None, "--lang", help="Language of IN when the file does not say."),
    train_lang: str | None = typer.Option(None, "--train-lang", help="L1, the model's training language (unseen-*)."),
    names_from: str | None = typer.Option(None, "--names-from", help="Language of the name inventory (default IN's)."),
    dataset: str = typer.Option("wikiann", "--dataset", help="Dataset of IN's language (and the default of the others)."),
    train_dataset: str | None = typer.Option(None, "--train-dataset", help="Dataset of --train-lang."),
    names_dataset: str | None = typer.Option(None, "--names-dataset", help="Dataset of --names-from."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Local data root (default $XNER_DATA_DIR)."),
    model: str | None = typer.Option(None, "--model", help="Backbone: mask token, word vectors for unseen-context."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format of the summary."),
) -> None:
    """Perturb a test set (label-preserving, seeded); write it and its edit records, print what changed."""
    from xner.perturb import perturb_file

    summary = perturb_file(
        source, out, kind, rate, seed, lang=lang, train_lang=train_lang, names_from=names_from,
        dataset=dataset, train_dataset=train_dataset, names_dataset=names_dataset,
        data_dir=data_dir, model=model,
    )
    shown = _measure_rows(summary) if fmt is OutputFormat.table else [summary]
    print_rows(shown, fmt, title=f"{summary['kind']}: {source} -> {out}")


@app.command("overlap")
@user_errors
def overlap_command(
    source: str = typer.Argument(..., metavar="SRC_LANG", help="Source (training) language."),
    target: str = typer.Argument(..., metavar="TGT_LANG", help="Target (test) language."),
    dataset: str = typer.Option("wikiann", "--dataset", help="Dataset of both languages."),
    src_dataset: str | None = typer.Option(None, "--src-dataset", help="Dataset of SRC_LANG (default --dataset)."),
    tgt_dataset: str | None = typer.Option(None, "--tgt-dataset", help="Dataset of TGT_LANG (default --dataset)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Local data root (default $XNER_DATA_DIR)."),
    model: str | None = typer.Option(None, "--model", help="Also subword overlap under this backbone's tokenizer."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
) -> None:
    """Entity, token and context overlap (%) of SRC_LANG's train split with TGT_LANG's test split."""
    from xner.metrics import pair_overlap

    row = pair_overlap(
        source, target, source_dataset=src_dataset or dataset, target_dataset=tgt_dataset or dataset,
        data_dir=data_dir, model=model,
    )
    print_rows(_measure_rows(row) if fmt is OutputFormat.table else [row], fmt, title=f"overlap {source} -> {target}")


@app.command("report")
@user_errors
def report_command(
    store: str = typer.Argument(..., metavar="STORE", help="Result store (SQLite) or an exported results .csv/.parquet."),
    out: str = typer.Option("report", "--out", "-o", help="Report folder to write."),
    config: str | None = typer.Option(None, "--config", help="Study config file to print in the report."),
    continues: str | None = typer.Option(
        None, "--continues", help="An earlier study's store or results table whose curves this study continues."),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples per confidence interval."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
) -> None:
    """Analyse a study's results, write tables, figures and one self-contained report.html; print its path."""
    from pathlib import Path

    from xner.report import write_report

    page = write_report(store, out, Path(config) if config else None, continues=continues, n_resamples=resamples,
                        seed=seed)
    typer.echo(str(page))


def _label_map(pairs: list[str], option: str = "--label-map") -> dict[str, str]:
    """``["DATE=O", "GPE=LOC"]`` -> ``{"DATE": "O", "GPE": "LOC"}``."""
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            expected = ("CATEGORY=NEWCATEGORY or CATEGORY=drop, e.g. religion=drop" if option == "--category-map"
                        else "TYPE=NEWTYPE or TYPE=O, e.g. DATE=O")
            raise XnerError(f"{option} {pair!r}: expected {expected}")
        mapping[source] = target
    return mapping


@app.command("train")
@user_errors
def train_command(
    lang: str = typer.Option(..., "--lang", help="Training language (ISO code)."),
    out: str = typer.Option(..., "--out", help="Directory to save the model in."),
    task: str = typer.Option("ner", "--task", help="ner, headline (multiple choice) or topic (xner.tasks)."),
    dataset: str = typer.Option("wikiann", "--dataset", help="wikiann, masakhaner2, masakhanews or a data folder."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Local data root (default $XNER_DATA_DIR)."),
    model: str = typer.Option("embedded", "--model", help="embedded, tiny, a local HF dir or a hub id."),
    train_size: int | None = typer.Option(None, "--train-size", help="Training sentences/documents (default: all)."),
    epochs: int = option(TrainingOptions, "epochs"),
    lr: float = option(TrainingOptions, "lr"),
    batch_size: int = option(TrainingOptions, "batch_size"),
    max_length: int = option(TrainingOptions, "max_length"),
    train_layers: int | None = option(TrainingOptions, "train_layers"),
    precision: str = option(TrainingOptions, "precision"),
    label_map: list[str] = typer.Option([], "--label-map", help="Entity-type map, e.g. DATE=O (repeatable)."),
    category_map: list[str] = typer.Option(
        [], "--category-map", help="Topic category map, e.g. religion=drop (repeatable)."),
    choices: int = typer.Option(4, "--choices", help="Candidates per headline question."),
    dev_size: int | None = option(TrainingOptions, "dev_size"),
    seed: int = typer.Option(0, "--seed"),
    checkpoint: str = option(TrainingOptions, "checkpoint"),
    dropout: float | None = option(TrainingOptions, "dropout"),
    compact: bool = typer.Option(
        False, "--compact", help="Save only the weights that differ from the pretrained model (tens of MB)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already saved at --out."),
    repair: bool | None = _repair_option(),
) -> None:
    """Train a model on one language; prints a line per epoch with its dev score."""
    import logging

    from xner.models.tagger import TrainConfig
    from xner.tasks import get_task

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                         train_layers=train_layers, precision=precision, dev_size=dev_size, seed=seed,
                         checkpoint=checkpoint, dropout=dropout)
    if get_task(task).head is not None:
        from xner.tasks.pipeline import DocumentData, train_document_model

        data = DocumentData(dataset, data_dir, _label_map(category_map, "--category-map"), choices)
        trained = train_document_model(task, lang, data=data, model=model, train_size=train_size, config=config,
                                       out=out, compact=compact, overwrite=overwrite, progress=True)
        record = trained.metadata["trainings"][-1]
        typer.echo(f"saved {out}: {trained.task}, {record['train_examples']} examples "
                   f"({record['truncated_sequences']} sequences cut at {max_length} subwords), "
                   f"best epoch {record['best_epoch']}, {record['seconds']:.0f} s")
        return
    from xner.pipeline import DataSpec, train_model

    data = DataSpec(dataset, data_dir, _label_map(label_map), repair)
    tagger = train_model(lang, data=data, model=model, train_size=train_size, config=config, out=out,
                         compact=compact, overwrite=overwrite, progress=True)
    record = tagger.metadata["trainings"][-1]
    typer.echo(f"saved {out}: {record['train_sentences']} sentences, best epoch {record['best_epoch']}, "
               f"{record['seconds']:.0f} s")


@app.command("evaluate")
@user_errors
def evaluate_command(
    model_dir: str = typer.Argument(..., help="A model directory written by `xner train`."),
    lang: str = typer.Option(..., "--lang", help="Test language."),
    dataset: str = typer.Option("wikiann", "--dataset"),
    data_dir: str | None = typer.Option(None, "--data-dir"),
    split: str = typer.Option("test", "--split"),
    perturb: str = typer.Option("", "--perturb", help="Perturbations, comma-separated (e.g. unseen-entity,mask-entity)."),
    rate: float = typer.Option(1.0, "--rate", help="Share of eligible tokens/mentions the generic perturbations edit."),
    train_lang: str | None = typer.Option(None, "--train-lang", help="The model's training language L1."),
    label_map: list[str] = typer.Option([], "--label-map", help="Entity-type map of the test data, e.g. DATE=O."),
    category_map: list[str] = typer.Option(
        [], "--category-map", help="Topic category map of the test data, e.g. religion=drop."),
    predictions: str | None = typer.Option(
        None, "--predictions", help="Document tasks: write per-example predictions (CSV) here."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N test sentences/documents."),
    seed: int = typer.Option(0, "--seed"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the CPU/GPU computes it) | fp32 | bf16 | int8."),
    repair: bool | None = _repair_option(),
    decoding: str = typer.Option(DEFAULT_DECODING, "--decoding",
                                 help="How word distributions become tags for f1: repair, strict or viterbi; "
                                      "every decoding is also scored as f1_<name>."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format"),
) -> None:
    """NER: entity P/R/F1 per type and micro (seqeval, strict IOB2); document tasks (the model
    says which): accuracy; clean and perturbed, with 95% CIs."""
    from xner.models.tagger import Tagger
    from xner.pipeline import DataSpec, evaluate_model
    from xner.tasks.pipeline import model_task

    kinds = [k.strip() for k in perturb.split(",") if k.strip()]
    if model_task(model_dir).head is not None:
        rows = _evaluate_documents(model_dir, lang, dataset, data_dir, split, kinds,
                                   _label_map(category_map, "--category-map"), predictions, limit, seed)
    else:
        tagger = Tagger.load(model_dir)
        rows = evaluate_model(tagger, lang, data=DataSpec(dataset, data_dir, _label_map(label_map), repair),
                              split=split, perturbations=kinds, train_lang=train_lang, rate=rate, seed=seed,
                              limit=limit, precision=precision, decoding=decoding)
    if fmt is OutputFormat.table:  # per-type scores make a row far wider than a terminal
        rows = _measure_columns(rows, [row["perturbation"] for row in rows])
    elif fmt is OutputFormat.csv:
        rows = [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]
    print_rows(_same_columns(rows), fmt, title=f"{model_dir} on {lang} {split}")


def _evaluate_documents(model_dir: str, lang: str, dataset: str, data_dir: str | None, split: str,
                        kinds: list[str], category_map: dict[str, str], predictions: str | None,
                        limit: int | None, seed: int) -> list[dict[str, Any]]:
    from xner.models.document_model import DocumentModel
    from xner.tasks.pipeline import DocumentData, evaluate_document_model

    document_model = DocumentModel.load(model_dir)
    choices = document_model.metadata["train_data"].get("choices", 4)
    rows, records = evaluate_document_model(document_model, lang, data=DocumentData(dataset, data_dir, category_map,
                                                                                    choices),
                                            split=split, perturbations=kinds, seed=seed, limit=limit)
    if predictions:
        with atomic_file(predictions) as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
    return rows


def _same_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row every column (perturbed rows carry edit counts the clean row lacks)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [{c: row.get(c) for c in columns} for row in rows]


def _measure_columns(rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, str]]:
    """Several flat results side by side: a row per measure, a column per result (``names``)."""
    per_result = [_measure_rows({k: "" if v is None else v for k, v in row.items()}) for row in _same_columns(rows)]
    return [{"measure": cells[0]["measure"], **{n: c["value"] for n, c in zip(names, cells)}}
            for cells in zip(*per_result)]


@app.command("predict")
@user_errors
def predict_command(
    model_dir: str = typer.Argument(..., metavar="MODEL", help="A model folder written by `xner train` (full or compact)."),
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="CoNLL files or raw text (a paragraph a line); .gz allowed."),
    out: str | None = typer.Option(None, "--out", "-o", help="File to write (default: standard output)."),
    fmt: str = typer.Option("conll", "--format", help="conll (token, tag) | jsonl (tokens, tags) | spans (entities)."),
    input_format: str = typer.Option("auto", "--input-format", help="auto | conll | text."),
    lang: str | None = typer.Option(None, "--lang", help="Language of raw text (default: the model's)."),
    precision: str = typer.Option("auto", "--precision", help="auto (by the CPU/GPU) | fp32 | bf16 | int8."),
    probabilities: bool = typer.Option(False, "--probabilities", help="Also write each token's tag probability."),
) -> None:
    """Tag CoNLL or raw-text files with a trained model; a summary goes to standard error."""
    from xner.predict import predict_file

    summary = predict_file(model_dir, inputs, out, format=fmt, input_format=input_format, lang=lang,
                           precision=precision, probabilities=probabilities, progress=sys.stderr.isatty())
    typer.echo(f"tagged {summary['sentences']} sentences, {summary['tokens']} tokens, {summary['entities']} entities "
               f"({summary['precision']}, {summary['sentences_per_s']:.0f} sentences/s)"
               + (f"; wrote {out}" if out else ""), err=True)


@app.command("study")
@user_errors
def study_command(
    config: str = typer.Argument(..., metavar="CONFIG", help="Study config (YAML)."),
    store: str | None = typer.Option(None, "--store", help="Result store (default <output_dir>/study.sqlite)."),
    executor: str | None = typer.Option(None, "--executor", help="sequential (default), process or ray."),
    workers: int | None = typer.Option(None, "--workers", help="Process pool size / Ray runs in flight."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster: auto or HOST:PORT (default: local)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count the runs the study has and still needs."),
    only: list[str] = typer.Option([], "--only", help="KEY=VALUE (repeatable): only the runs whose params match, "
                                   "with their dependencies, e.g. --only target=de --only seed=1; a nested "
                                   "setting by its dotted key, an unset value as null."),
    prune: bool = typer.Option(False, "--prune", help="First delete the store's runs that the config no longer "
                               "plans (an edited config's earlier version), with their run folders."),
) -> None:
    """Run every run of a study that is not done yet, print the results table and write the report."""
    from collections import Counter

    from xner.study import ResultStore, run_study
    from xner.study.restrict import parse_filters

    try:
        run = run_study(config, store, executor, workers=workers, address=address, dry_run=dry_run,
                        only=parse_filters(only), prune=prune and not dry_run)
    except KeyboardInterrupt:
        typer.echo("interrupted: every finished run is kept in the store; run the same command to resume",
                   err=True)
        raise typer.Exit(130) from None
    kinds = ", ".join(f"{kind} {n}" for kind, n in Counter(spec.kind for spec in run.specs).items())
    typer.echo(f"{run.study.name}: {len(run.specs)} runs ({kinds}); {run.to_run} to run, {len(run.specs) - run.to_run} already done; store {run.store_path}")
    if run.pruned:
        typer.echo(f"pruned {run.pruned} runs the config no longer plans")
    if run.stale:
        typer.echo(f"the store also holds {run.stale} runs the config no longer plans (an earlier version's): "
                   "their results are in the table and the report; --prune deletes them", err=True)
    if dry_run:
        return
    with ResultStore(run.store_path, create=False) as results:
        summary = results.summary()
    # plain fixed-width text, not a rich table: a rich table folds every cell to the terminal's
    # width (80 columns in a log: `embedd`/`ed`), this reads the same in a log file
    accuracy = " (accuracy for document tasks)" if "task" in summary else ""
    typer.echo(f"{run.study.name}: F1, mean over seeds{accuracy}")
    typer.echo(summary.to_markdown(index=False, tablefmt="simple", floatfmt=".2f", missingval=""))
    typer.echo(f"report: {run.report}" if run.report else f"results: xner results {run.store_path} --format csv")
    if run.counts.get("failed"):
        typer.echo(f"{run.counts['failed']} runs failed: xner status {run.store_path}", err=True)
        raise typer.Exit(1)


@app.command("status")
@user_errors
def status_command(store: str = typer.Argument(..., metavar="STORE", help="Result store (SQLite).")) -> None:
    """Count a study's runs by status and show why runs failed."""
    from xner.study import ResultStore

    with ResultStore(store, create=False) as results:
        typer.echo(", ".join(f"{status} {n}" for status, n in results.status_counts().items()))
        for record in results.records("failed"):
            typer.echo(f"failed {record.id} {record.spec.label()}: {record.error}")


@app.command("results")
@user_errors
def results_command(
    store: str = typer.Argument(..., metavar="STORE", help="Result store (SQLite)."),
    fmt: str = typer.Option("csv", "--format", help="csv, parquet or json."),
    out: str | None = typer.Option(None, "--out", help="File to write (default: stdout; parquet needs it)."),
) -> None:
    """Export the tidy results table (one row per evaluation run and test set)."""
    from xner.study import ResultStore

    with ResultStore(store, create=False) as results:
        text = results.export(fmt, out)
    typer.echo(text.rstrip("\n") if text is not None else f"wrote {out}")


@app.command("recommend")
@user_errors
def recommend_command(
    target: str = typer.Option(..., "--target", help="The target language (ISO 639-1/3)."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="The target's dataset: its train split, labels unused, is the unlabeled text."),
    unlabeled: str | None = typer.Option(None, "--unlabeled", help="Unlabeled target text, one sentence a line."),
    candidates: str = typer.Option("", "--candidates", help="Candidate sources, comma-separated (default: all)."),
    ranker: str | None = typer.Option(None, "--ranker", help="A ranker file (default: the one shipped with xner)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Data root of the candidates' train splits."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv or json."),
) -> None:
    """Rank candidate teacher languages for a target by predicted zero-shot F1 (nothing is trained)."""
    from xner.recommend import recommend

    chosen = [c.strip() for c in candidates.split(",") if c.strip()] or None
    ranked = recommend(target, dataset=dataset, unlabeled=unlabeled, candidates=chosen, ranker=ranker, data_dir=data_dir)
    if fmt is OutputFormat.table:
        ranked = ranked.round(2).assign(predicted=[f"{f:.1f} [{lo:.1f}, {hi:.1f}]" for f, lo, hi in zip(
            ranked["predicted_f1"], ranked["predicted_lo"], ranked["predicted_hi"])])
        ranked = ranked.rename(columns={"uriel_genetic": "genetic", "uriel_featural": "featural",
                                        "subword_overlap": "subwords"})
        ranked = ranked[["rank", "source", "predicted", "genetic", "featural", "subwords"]]
    print_rows(ranked.to_dict("records"), fmt, title=f"teachers for {target} (predicted zero-shot F1, 90% interval)")


@app.command("train-ranker")
@user_errors
def train_ranker_command(
    results: str = typer.Argument(..., metavar="RESULTS",
                                  help="A study's store (configs/matrix.yaml) or an exported results table (.csv)."),
    out: str = typer.Option(..., "--out", help="Ranker file to write (JSON)."),
    tables: str | None = typer.Option(
        None, "--tables", help="Also write the evidence here: pairs, feature correlations, leave-one-target-out."),
    label_map: list[str] = typer.Option([], "--label-map", help="For a results table: the label map its models used."),
    model: str = typer.Option("embedded", "--model", help="For a results table: the model it measured."),
    kind: str = typer.Option("auto", "--kind", help="ridge | lambdarank | auto (the one with the lower "
                             "leave-one-target-out regret)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="The study's data root."),
) -> None:
    """Learn the teacher ranker of `xner recommend` from measured zero-shot transfer."""
    from xner.recommend import MeasuredMatrix, train_ranker_from, write_ranker_tables
    from xner.study import ResultStore

    if results.endswith(".csv"):
        measured = MeasuredMatrix.from_table(results, _label_map(label_map), model)
    else:
        with ResultStore(results, create=False) as store:
            measured = MeasuredMatrix.from_store(store)
    ranker, pairs = train_ranker_from(measured, out, kind=kind, data_dir=data_dir)
    typer.echo(f"wrote {out}: a {ranker.kind} ranker, {len(pairs)} pairs, {len(set(pairs['target']))} targets, "
               f"interval +-{ranker.half_width:.1f} F1")
    if tables:
        quality = write_ranker_tables(pairs, tables, measured.frame, ranker.kind)["ranker_quality"]
        typer.echo(quality[["targets", "method", "n_targets", "ndcg", "top1", "regret"]].round(2).to_string(index=False))
        typer.echo(f"wrote {tables}")


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        raise XnerError(f"{option} {text!r}: expected comma-separated integers >= 0, e.g. 0,100,500")
    return values


@app.command("distill")
@user_errors
def distill_command(
    teacher: str = typer.Option(..., "--teacher", help="Teacher model dir(s), comma-separated for multi-source."),
    lang: str = typer.Option(..., "--lang", help="Target (lower-resource) language."),
    volumes: str = typer.Option("0,100,500,1000", "--volumes", help="Unlabeled volumes; 0 = the teacher zero-shot."),
    seeds: str = typer.Option("0", "--seeds", help="Seeds, comma-separated."),
    dataset: str = typer.Option("wikiann", "--dataset"),
    data_dir: str | None = typer.Option(None, "--data-dir"),
    pool: str = typer.Option("train", "--pool", help="Unlabeled pool, sources in order: train and/or pool files of 'xner data sentences'."),
    label_map: list[str] = typer.Option([], "--label-map", help="Entity-type map of the target data, e.g. DATE=O."),
    loss: str = option(DistillationOptions, "loss"),
    temperature: float = option(DistillationOptions, "temperature"),
    hard: bool = option(DistillationOptions, "hard"),
    threshold: float | None = option(DistillationOptions, "threshold"),
    weighting: str = option(DistillationOptions, "weighting"),
    train_layers: int | None = student_option("train_layers"),
    epochs: int = student_option("epochs"),
    lr: float = student_option("lr"),
    min_steps: int = student_option("min_steps"),
    precision: str = student_option("precision"),
    dropout: float | None = student_option("dropout"),
    perturb: str = typer.Option("", "--perturb", help="Also score on these perturbed test sets."),
    test_limit: int | None = typer.Option(None, "--test-limit", help="Only the first N test sentences."),
    models_dir: str | None = typer.Option(None, "--models-dir", help="The sweep's result store and models "
                                          "(default $XNER_CACHE/sweeps): finished runs are kept, an interrupted "
                                          "call resumes."),
    out: str | None = typer.Option(None, "--out", help="Write the table here (.csv, plus a .md beside it)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format"),
) -> None:
    """Teacher-student distillation on unlabeled target text, swept over unlabeled volumes (a study:
    resumable, every student kept)."""
    from xner.distillation.student import DistillConfig
    from xner.models.tagger import TrainConfig
    from xner.pipeline import DataSpec
    from xner.sweep import sweep_table, volume_sweep

    data = DataSpec(dataset, data_dir, _label_map(label_map))
    student = {**DEFAULT_STUDENT.model_dump(), "train_layers": train_layers, "epochs": epochs, "lr": lr,
               "min_steps": min_steps, "precision": precision, "dropout": dropout}
    config = DistillConfig(loss=loss, temperature=temperature, hard=hard, threshold=threshold, weighting=weighting,
                           train=TrainConfig(**student))
    teachers = [path.strip() for path in teacher.split(",") if path.strip()]
    rows = volume_sweep(teachers, lang, _int_list(volumes, "--volumes"), _int_list(seeds, "--seeds"), data=data,
                        config=config, perturbations=_names(perturb), test_limit=test_limit, models_dir=models_dir,
                        pool=_names(pool),
                        on_row=lambda r: typer.echo(_sweep_line(r), err=True))
    table = sweep_table(rows)
    if out:
        atomic_write(out, table.to_csv(index=False))
        atomic_write(out.rsplit(".", 1)[0] + ".md", table.to_markdown(index=False, floatfmt=".2f") + "\n")
    shown = table.round(2).astype(object).where(table.notna(), None)  # skipped volumes: null, not NaN
    print_rows(shown.to_dict("records"), fmt, title=f"{teacher} -> {lang}")


def _sweep_line(row: dict[str, Any]) -> str:
    if row["status"] != "done":
        return f"volume {row['volume']} seed {row['seed']}: {row['status']}"
    return (f"volume {row['volume']:>6} seed {row['seed']} {row['perturbation']}: F1 {row['f1']:.2f} "
            f"(gain {row['gain']:+.2f}) {row['seconds']:.0f} s")


@app.command("robustness")
@user_errors
def robustness_command(
    pairs: str = typer.Option("local", "--pairs", help="all (the 13 reference pairs) | local | HRL:LRL,..."),
    model: str = typer.Option("embedded", "--model"),
    train_size: int | None = typer.Option(2000, "--train-size", help="Training sentences per model (smaller languages: all)."),
    perturb: str = typer.Option("unseen-entity,unseen-context,unseen-both", "--perturb"),
    rate: float = typer.Option(1.0, "--rate"),
    epochs: int = option(TrainingOptions, "epochs"),
    lr: float = option(TrainingOptions, "lr"),
    train_layers: int | None = option(TrainingOptions, "train_layers"),
    seed: int = typer.Option(0, "--seed"),
    test_limit: int | None = typer.Option(None, "--test-limit"),
    data_dir: str | None = typer.Option(None, "--data-dir"),
    models_dir: str = typer.Option("models", "--models-dir", help="The experiment's result store and models "
                                   "(study.sqlite, runs/): finished runs are kept, an interrupted call resumes."),
    out: str = typer.Option("robustness.csv", "--out", help="The table (.csv, plus a .md beside it)."),
) -> None:
    """Native vs transfer models on clean and perturbed LRL test sets, with entity overlap (a study:
    resumable, models reused)."""
    import pandas as pd

    from xner.models.tagger import TrainConfig
    from xner.robustness import parse_pairs, robustness

    config = TrainConfig(epochs=epochs, lr=lr, train_layers=train_layers, seed=seed)
    kinds = [k.strip() for k in perturb.split(",") if k.strip()]
    columns = ["pair", "relation", "kind", "perturbation", "precision", "recall", "f1", "f1_lo", "f1_hi",
               "drop", "entity_overlap"]
    done: list[dict[str, Any]] = []

    def write(row: dict[str, Any]) -> None:
        """Rewrite the tables after every row: an interrupted run keeps what it finished."""
        typer.echo(_robustness_line(row), err=True)
        done.append(row)
        table = pd.DataFrame(done)
        atomic_write(out, table.to_csv(index=False))
        atomic_write(out.rsplit(".", 1)[0] + ".md", table[columns].to_markdown(index=False, floatfmt=".1f") + "\n")

    rows, missing = robustness(parse_pairs(pairs), data_dir=data_dir, model=model, train_size=train_size,
                               config=config, perturbations=kinds, rate=rate, test_limit=test_limit,
                               models_dir=models_dir, on_row=write)
    for reason in missing:
        typer.echo(f"missing: {reason}", err=True)
    if not rows:
        raise XnerError(f"no pair of {pairs!r} has its data under the data root; see the 'missing' lines above")
    typer.echo(pd.DataFrame(rows)[columns].to_markdown(index=False, floatfmt=".1f"))
    typer.echo(f"wrote {out}")


def _robustness_line(row: dict[str, Any]) -> str:
    return f"{row['pair']} {row['kind']:<8} {row['perturbation']:<16} F1 {row['f1']:.1f}"


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
