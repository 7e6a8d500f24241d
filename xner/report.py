"""Turn a study's results into a report folder a researcher can publish from.

:func:`write_report` runs every analysis of :mod:`xner.analysis` on the tidy results table and
writes, under ``out_dir``::

    results.csv                      the tidy table, one row per (run, test set)
    tables/<name>.csv|.md|.tex       each analysis: full numbers, markdown, LaTeX (booktabs)
    tables/mixed_effects.txt         the mixed model's statsmodels summary
    tables/document_predictions.csv.gz  every document-task evaluation's per-example answers
    figures/<name>.png|.svg          F1-vs-volume curves, clean-vs-perturbed bars,
                                     overlap-vs-F1 scatter, robustness heatmap
    report.md                        every table, and why a figure or table is missing
    report.html                      one self-contained page: figures as data URIs, tables,
                                     the study config, versions and run times

A figure or table whose data the study lacks (a robustness-only study has no volume curve) is
skipped and the report says why. Figures are drawn with matplotlib's object API (no pyplot,
no global backend), rasterised by Agg.

>>> write_report(results, "report")  # doctest: +SKIP
PosixPath('report/report.html')
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from xner.analysis import (
    mixed_effects,
    robustness_overlap,
    robustness_table,
    teacher_comparison,
    transfer_correlates,
    transfer_pairs,
    volume_correlations,
    volume_curves,
)
from xner.beyond_split import beyond_the_split
from xner.errors import XnerError
from xner.io import atomic_directory
from xner.tasks.report import document_predictions, document_tables, split_tasks
from xner.languages import get_language
from xner.options import DEFAULT_CHECKPOINT, layers_name
from xner.ranker import transfer_matrix
from xner.sensitivity import (SETTING, checkpoint_comparison, checkpoint_spread, decoding_gains, setting_effects,
                              setting_gains, with_settings)

__all__ = ["write_report"]

NA = "--"
"""Shown for a missing value in markdown, LaTeX and HTML tables."""

REFERENCE_TEACHER = "en"
"""The distant teacher other teachers are compared with (English, every target's second teacher
in ``configs/volume.yaml``); the comparison tables appear where a target has both."""

REPORTED_PACKAGES: tuple[str, ...] = (
    "xner", "torch", "transformers", "tokenizers", "seqeval", "numpy", "scipy",
    "statsmodels", "pandas", "matplotlib", "lang2vec",
)
"""Packages whose versions the report lists for the environment that wrote it."""


@dataclass(frozen=True)
class Section:
    """One table or figure of the report: its content, or the reason it is missing."""

    name: str
    title: str
    table: pd.DataFrame | None = None
    display: pd.DataFrame | None = None
    figure: Figure | None = None
    text: str = ""
    skipped: str = ""
    compressed: bool = False  # write the CSV gzipped (reproducibly: no timestamp), for long tables


# ---------------------------------------------------------------- formatting


def _num(value: object, digits: int = 2) -> str:
    return NA if pd.isna(value) else f"{float(value):.{digits}f}"


def _p(values: pd.Series) -> list[str]:
    return [NA if pd.isna(v) else f"{v:.2g}" for v in values]


def _ci(value: pd.Series, lo: pd.Series, hi: pd.Series, digits: int = 2) -> list[str]:
    """``0.95 [0.90, 0.98]``: an estimate with its interval, as one table cell."""
    return [
        NA if pd.isna(v) else f"{_num(v, digits)} [{_num(a, digits)}, {_num(b, digits)}]"
        for v, a, b in zip(value, lo, hi)
    ]


def _corr(table: pd.DataFrame, name: str) -> list[str]:
    return _ci(table[name], table[f"{name}_lo"], table[f"{name}_hi"])


def _keys(table: pd.DataFrame, keys: tuple[str, ...]) -> dict[str, pd.Series]:
    return {key: table[key] for key in keys if key in table}


def _volume_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            **_keys(table, ("model", "genus", "source", "target")),
            "targets": table["n_targets"],
            "runs": table["n_runs"],
            "Pearson r, F1": _corr(table, "f1_pearson"),
            "p": _p(table["f1_pearson_p"]),
            "Spearman rho, F1": _corr(table, "f1_spearman"),
            "Pearson r, gain": _corr(table, "gain_pearson"),
            "Spearman rho, gain": _corr(table, "gain_spearman"),
            "F1 per doubling": _ci(table["slope"], table["slope_lo"], table["slope_hi"]),
            "teacher F1": [_num(v, 1) for v in table["teacher_f1"]],
            "beats teacher at": _volumes(table["beats_teacher_at"]),
            "flattens at": _volumes(table["flattens_at"]),
            "last doubling": [_num(v) for v in table["last_doubling"]],
            "note": table["note"],
        }
    )


def _beyond_split_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        **_keys(table, ("model", "family", "genus", "source", "target")),
        "seeds": table["n_seeds"].map(_num),
        **({"train split": _volumes(table["split_sentences"]), "whole pool": _volumes(table["pool_sentences"])}
           if "split_sentences" in table else {}),
        "teacher F1": [_num(v, 1) for v in table["teacher_f1"]],
        "F1 at split end": [_num(v, 1) for v in table["split_f1"]],
        "F1 at whole pool": [_num(v, 1) for v in table["pool_f1"]],
        "F1 per doubling, whole range": _ci(table["slope"], table["slope_lo"], table["slope_hi"]),
        "F1 per doubling, past the split": _ci(table["slope_new"], table["slope_new_lo"], table["slope_new_hi"]),
    })


def _volumes(values: pd.Series) -> list[str]:
    return [NA if pd.isna(v) else str(int(v)) for v in values]


def _teacher_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            **_keys(table, ("model", "genus", "target")),
            "teacher": table["source"],
            "vs": table["reference"],
            "targets": table["n_targets"],
            "zero-shot F1": _versus(table["teacher_f1"], table["reference_teacher_f1"], 1),
            "zero-shot diff": [_num(v) for v in table["teacher_diff"]],
            "whole pool": _volumes(table["full_volume"]),
            "student F1 there": _versus(table["full_f1"], table["reference_full_f1"], 1),
            "student diff there": _ci(table["full_diff"], table["full_diff_lo"], table["full_diff_hi"]),
            "mean diff, all volumes": [_num(v) for v in table["mean_diff"]],
            "F1 per doubling": _versus(table["slope"], table["reference_slope"]),
        }
    )


def _versus(ours: pd.Series, reference: pd.Series, digits: int = 2) -> list[str]:
    """``71.2 vs 69.8``: a teacher's value next to the reference teacher's, as one cell."""
    return [f"{_num(a, digits)} vs {_num(b, digits)}" for a, b in zip(ours, reference)]


def _coefficients_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "term": table["term"],
            "coef [95% CI]": _ci(table["coef"], table["lo"], table["hi"], 3),
            "se": [_num(v, 3) for v in table["se"]],
            "z": [_num(v, 2) for v in table["z"]],
            "p": _p(table["p"]),
        }
    )


def _genus_slopes_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "genus": table["genus"],
            "F1 per doubling [95% CI]": _ci(table["slope"], table["lo"], table["hi"]),
            "p": _p(table["p"]),
        }
    )


def _transfer_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": table["model"],
            "covariate": table["covariate"],
            "pairs": table["n_pairs"],
            "Pearson r": _corr(table, "pearson"),
            "p": _p(table["pearson_p"]),
            "Spearman rho": _corr(table, "spearman"),
            "F1 per unit": _ci(table["slope"], table["slope_lo"], table["slope_hi"], 3),
        }
    )


def _robustness_display(table: pd.DataFrame) -> pd.DataFrame:
    less = table["transfer_degrades_less"]
    return pd.DataFrame(
        {
            **_keys(table, ("model", "kind", "source", "target", "perturbation")),
            "seeds": table["n_seeds"],
            "clean F1": _ci(table["clean_f1"], table["clean_lo"], table["clean_hi"], 1),
            "perturbed F1": _ci(table["perturbed_f1"], table["perturbed_lo"], table["perturbed_hi"], 1),
            "drop": _ci(table["drop"], table["drop_lo"], table["drop_hi"], 1),
            "CI from": table["drop_ci"],
            "native drop": [_num(v, 1) for v in table["native_drop"]],
            "transfer degrades less": [NA if pd.isna(v) else ("yes" if v else "no") for v in less],
        }
    )


# ---------------------------------------------------------------- figures


def _grid(count: int, width: float = 4.2, height: float = 3.2) -> tuple[Figure, list]:
    columns = min(count, 3)
    rows = -(-count // columns)
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[count:]:
        unused.set_visible(False)
    return figure, axes[:count]


def _curve_label(row: pd.Series, several_models: bool) -> str:
    """``kin from swa``: a target taught by a close and a distant teacher has two curves."""
    curve = f"{row['target']} from {row['source']}"
    return f"{curve} ({row['model']})" if several_models else curve


def volume_figure(curves: pd.DataFrame) -> Figure:
    """Mean student F1 against unlabeled volume (log2 axis), one panel per genus, a CI band
    per target; the zero-shot teacher (volume 0) as a dashed line in the target's colour."""
    genera = sorted(curves["genus"].unique())
    several = curves["model"].nunique() > 1
    figure, axes = _grid(len(genera))
    for ax, genus in zip(axes, genera):
        lines = curves[curves["genus"] == genus]
        for (_, _, _), line in lines.groupby(["model", "source", "target"], sort=True):
            sweep = line[line["volume"] > 0].sort_values("volume")
            teacher = line[line["volume"] == 0]
            label = _curve_label(line.iloc[0], several)
            (drawn,) = ax.plot(sweep["volume"], sweep["f1"], marker="o", label=label)
            ax.fill_between(sweep["volume"], sweep["f1_lo"], sweep["f1_hi"],
                            color=drawn.get_color(), alpha=0.2, linewidth=0)
            if not teacher.empty:
                ax.axhline(teacher["f1"].mean(), color=drawn.get_color(), linestyle="--",
                           linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_title(genus)
        ax.set_xlabel("unlabeled target sentences (log2)")
        ax.set_ylabel("student F1 (dashed: teacher)")
        ax.legend(fontsize="small")
    return figure


def _bar_label(kind: str, source: str, several_models: bool, model: str) -> str:
    label = "native" if kind == "native" else f"transfer from {source}"
    return f"{label} ({model})" if several_models else label


def _bar_values(group: pd.DataFrame, perturbations: list[str]) -> np.ndarray:
    """F1, CI low and CI high (rows) of one model: clean, then each perturbation (columns)."""
    clean = group.iloc[[0]][["clean_f1", "clean_lo", "clean_hi"]].to_numpy(dtype=float)
    perturbed = (group.set_index("perturbation")[["perturbed_f1", "perturbed_lo", "perturbed_hi"]]
                 .reindex(perturbations).to_numpy(dtype=float))
    return np.vstack([clean, perturbed]).T


def robustness_bars_figure(table: pd.DataFrame) -> Figure:
    """Clean vs perturbed F1 per target language, native and transfer bars side by side."""
    targets = sorted(table["target"].unique())
    several = table["model"].nunique() > 1
    figure, axes = _grid(len(targets), width=5.0)
    for ax, target in zip(axes, targets):
        rows = table[table["target"] == target]
        conditions = ["clean", *sorted(rows["perturbation"].unique())]
        models = list(rows.groupby(["model", "kind", "source"], sort=True))
        width = 0.8 / len(models)
        for offset, ((model, kind, source), group) in enumerate(models):
            heights, low, high = _bar_values(group, conditions[1:])
            ax.bar(np.arange(len(conditions)) + offset * width, heights, width,
                   yerr=np.vstack([heights - low, high - heights]), capsize=2,
                   label=_bar_label(kind, source, several, model))
        ax.set_xticks(np.arange(len(conditions)) + 0.4 - width / 2, conditions,
                      rotation=30, ha="right", fontsize="small")
        ax.set_title(target)
        ax.set_ylabel("F1")
        ax.legend(fontsize="small")
    return figure


def overlap_figure(pairs: pd.DataFrame, fits: pd.DataFrame) -> Figure:
    """Transfer F1 against entity overlap, one point per (source, target), with the OLS line."""
    figure = Figure(figsize=(5.5, 4.2), layout="constrained")
    ax = figure.subplots()
    for model, group in pairs.groupby("model", sort=True):
        points = ax.scatter(group["entity_overlap"], group["f1"], label=model)
        for _, row in group.iterrows():
            ax.annotate(f"{row['source']}→{row['target']}", (row["entity_overlap"], row["f1"]),
                        fontsize="x-small", xytext=(3, 3), textcoords="offset points")
        fit = fits[(fits["model"] == model) & (fits["covariate"] == "entity_overlap")]
        if not fit.empty and pd.notna(fit["slope"].iloc[0]):
            xs = np.linspace(group["entity_overlap"].min(), group["entity_overlap"].max(), 50)
            r = fit.iloc[0]
            ax.plot(xs, r["intercept"] + r["slope"] * xs, color=points.get_facecolor()[0],
                    label=f"fit: r = {_num(r['pearson'])} [{_num(r['pearson_lo'])}, "
                    f"{_num(r['pearson_hi'])}]")
    ax.set_xlabel("entity overlap, source train vs target test (%)")
    ax.set_ylabel("transfer F1")
    ax.legend(fontsize="small")
    return figure


def _row_label(row: pd.Series, several_models: bool) -> str:
    label = f"{row['target']} native" if row["kind"] == "native" else f"{row['source']}→{row['target']} transfer"
    return f"{label} ({row['model']})" if several_models else label


def heatmap_figure(table: pd.DataFrame) -> Figure:
    """F1 drop (clean - perturbed): a row per model (native, or transfer from a source) of each
    target, grouped by target; a column per perturbation."""
    several = table["model"].nunique() > 1
    ordered = table.sort_values(["target", "kind", "source", "model"])
    labels = ordered.apply(_row_label, axis=1, several_models=several)
    grid = ordered.assign(row=labels).pivot_table(index="row", columns="perturbation", values="drop")
    grid = grid.reindex(labels.drop_duplicates())
    figure = Figure(figsize=(2.0 + 1.1 * grid.shape[1], 1.2 + 0.35 * grid.shape[0]),
                    layout="constrained")
    ax = figure.subplots()
    bound = max(float(np.nanmax(np.abs(grid.to_numpy()))), 1e-9)
    image = ax.imshow(grid.to_numpy(), cmap="RdBu_r", aspect="auto",
                      norm=TwoSlopeNorm(0.0, -bound, bound))
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        ax.text(j, i, _num(value, 1), ha="center", va="center", fontsize="small")
    figure.colorbar(image, ax=ax, label="F1 drop")
    return figure


def _family_order(codes: pd.Series) -> list[str]:
    """Language codes ordered by family, genus, then code (unknown codes last)."""
    def key(code: str) -> tuple[str, str, str]:
        try:
            lang = get_language(code)
        except XnerError:
            return ("~", "~", code)
        return (lang.family, lang.genus, code)

    return sorted(set(codes), key=key)


def matrix_figure(matrix: pd.DataFrame) -> Figure:
    """Source x target F1 (zero-shot off the diagonal, native on it), both axes ordered by
    family and genus, so that blocks of related languages show."""
    sources, targets = _family_order(matrix["source"]), _family_order(matrix["target"])
    grid = matrix.pivot_table(index="source", columns="target", values="f1").reindex(index=sources, columns=targets)
    figure = Figure(figsize=(max(4.5, 2.4 + 0.42 * len(targets)), max(3.5, 1.6 + 0.38 * len(sources))),
                    layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(grid.to_numpy(), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(targets)), [f"{t} ({get_language(t).genus})" for t in targets], rotation=60, ha="right")
    ax.set_yticks(range(len(sources)), [f"{s} ({get_language(s).genus})" for s in sources])
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize="x-small", color="white")
    ax.set_xlabel("target (test language)")
    ax.set_ylabel("source (training language)")
    figure.colorbar(image, ax=ax, label="F1 (diagonal: native)")
    return figure


def settings_figure(rows: pd.DataFrame) -> Figure:
    """Per curve (a panel each), mean student F1 against volume under every teacher/student
    setting, shaded over the range of its seeds (which a mean alone would hide: seeds move a
    curve by more than a doubling of volume does); the setting's teacher at volume 0 as a
    dashed line."""
    curves = list(rows.groupby(["target", "source"], sort=True))
    figure, axes = _grid(len(curves))
    for ax, ((target, source), curve) in zip(axes, curves):
        spread = curve.groupby([*SETTING, "volume"], as_index=False)["f1"].agg(["mean", "min", "max"])
        for (teacher, student), line in spread.groupby(SETTING, sort=True):
            sweep = line[line["volume"] > 0].sort_values("volume")
            (drawn,) = ax.plot(sweep["volume"], sweep["mean"], marker="o", label=f"{teacher} teacher, {student} student")
            ax.fill_between(sweep["volume"], sweep["min"], sweep["max"], color=drawn.get_color(), alpha=0.15)
            ax.axhline(line.loc[line["volume"] == 0, "mean"].mean(), color=drawn.get_color(), linestyle="--",
                       linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{target} from {source}")
        ax.set_xlabel("unlabeled target sentences (log2)")
        ax.set_ylabel("student F1 (shaded: seeds' range; dashed: teacher)")
        ax.legend(fontsize="x-small")
    return figure


# ---------------------------------------------------------------- sections


def _volume_sections(df: pd.DataFrame, options: Mapping[str, int]) -> list[Section]:
    reason = "no clean student rows with volume > 0: the study has no teacher-student sweep"
    students = "volume" in df.columns and (df["kind"] == "student").any()
    curves = volume_curves(df, **options) if students else None
    if curves is None or curves[curves["volume"] > 0].empty:
        names = ("volume_by_genus", "volume_by_target", "mixed_effects", "volume_curves")
        return [Section(name, name.replace("_", " "), skipped=reason) for name in names]
    sections = []
    for by in ("genus", "target"):
        table = volume_correlations(df, by=by, **options)
        sections.append(Section(f"volume_by_{by}", f"Student F1 vs log2(unlabeled volume), per {by}",
                                table=table, display=_volume_display(table)))
    for by in ("genus", "target"):
        table = teacher_comparison(df, REFERENCE_TEACHER, by=by, **options)
        if not table.empty:
            sections.append(Section(f"teachers_by_{by}",
                                    f"Close teacher vs the distant one ({REFERENCE_TEACHER}), per {by}",
                                    table=table, display=_teacher_display(table)))
    sections.extend(_mixed_sections(df))
    sections.append(Section("volume_curves", "Student F1 vs unlabeled volume, per genus",
                            figure=volume_figure(curves)))
    return sections


def _beyond_split_sections(df: pd.DataFrame, options: Mapping[str, int]) -> list[Section]:
    """Curves continued past the targets' train splits by raw-text pools (:mod:`xner.beyond_split`)."""
    sections = []
    has_volume = "volume" in df.columns and "dataset" in df.columns
    for by in ("family", "genus", "target"):
        name, title = f"beyond_split_by_{by}", f"F1 per doubling past the train split vs over the whole range, per {by}"
        table = beyond_the_split(df, by=by, **options) if has_volume else pd.DataFrame()
        sections.append(Section(name, title, table=table, display=_beyond_split_display(table)) if not table.empty
                        else Section(name, title, skipped="no student past its target's train split"))
    return sections


def _mixed_sections(df: pd.DataFrame) -> list[Section]:
    sections = []
    for model in sorted(df.loc[df["kind"] == "student", "model"].unique()):
        fit = mixed_effects(df, model=model)
        suffix = f" ({model})"
        if not fit.fitted:
            sections.append(Section(f"mixed_effects_{model}", "Mixed-effects model" + suffix,
                                    skipped=fit.note))
            continue
        note = f"{fit.formula} + {fit.random}" + (f"; {fit.note}" if fit.note else "")
        sections.append(Section(f"mixed_effects_{model}", "Mixed-effects model" + suffix,
                                table=fit.coefficients, display=_coefficients_display(fit.coefficients),
                                text=note + "\n\n" + fit.summary))
        sections.append(Section(f"genus_slopes_{model}",
                                "F1 per doubling of volume, per genus (mixed model)" + suffix,
                                table=fit.genus_slopes,
                                display=_genus_slopes_display(fit.genus_slopes)))
    return sections


MIN_CORRELATED_PAIRS = 3
"""Transfer pairs (per model) below which the report does not correlate transfer F1 with anything."""


def _transfer_sections(
    df: pd.DataFrame, covariates: pd.DataFrame | None, options: Mapping[str, int]
) -> list[Section]:
    pairs = transfer_pairs(df) if "kind" in df and (df["kind"] == "transfer").any() else pd.DataFrame()
    most_pairs = int(pairs.groupby("model").size().max()) if not pairs.empty else 0
    if most_pairs < MIN_CORRELATED_PAIRS:  # also spares the URIEL lookups (seconds) of a small study
        reason = (f"{most_pairs} (source, target) transfer pair(s): a correlation over pairs needs at least "
                  f"{MIN_CORRELATED_PAIRS}")
        return [Section("transfer_correlates", "Transfer F1 correlates", skipped=reason),
                Section("overlap_scatter", "Entity overlap vs transfer F1", skipped=reason)]
    table = transfer_correlates(df, covariates, **options)
    sections = [Section("transfer_correlates", "What predicts transfer F1 (over pairs)",
                        table=table, display=_transfer_display(table))]
    pairs = pairs.dropna(subset=["entity_overlap"])
    if len(pairs) < 2:
        sections.append(Section("overlap_scatter", "Entity overlap vs transfer F1",
                                skipped="fewer than 2 transfer pairs with entity_overlap"))
    else:
        sections.append(Section("overlap_scatter", "Entity overlap vs transfer F1",
                                figure=overlap_figure(pairs, table)))
    return sections


def _matrix_sections(df: pd.DataFrame) -> list[Section]:
    """The transfer matrix (a study with ``matrix`` blocks): where at least 3 targets each
    have at least 3 sources."""
    matrix = transfer_matrix(df)
    sources_per_target = matrix[matrix["kind"] == "transfer"].groupby("target")["source"].nunique()
    if (sources_per_target >= 3).sum() < 3:
        reason = "fewer than 3 targets with 3 or more zero-shot sources: no transfer matrix"
        return [Section("transfer_matrix", "Transfer matrix", skipped=reason),
                Section("transfer_matrix_heatmap", "Transfer matrix heatmap", skipped=reason)]
    display = matrix[["model", "source", "target", "kind", "n_seeds"]].assign(
        F1=_ci(matrix["f1"], matrix["f1_lo"], matrix["f1_hi"], 1),
        seeds=[f"{_num(lo, 1)}-{_num(hi, 1)}" for lo, hi in zip(matrix["f1_min"], matrix["f1_max"])])
    return [Section("transfer_matrix", "Zero-shot F1 per source and target (mean over seeds; CI: test set)",
                    table=matrix, display=display),
            *(Section(_heatmap_name(matrix, model, dataset), f"Transfer matrix on {dataset or 'the targets'}, "
                      "ordered by family", figure=matrix_figure(group))
              for (model, dataset), group in matrix.groupby(["model", "dataset"], sort=True))]


def _heatmap_name(matrix: pd.DataFrame, model: str, dataset: str) -> str:
    """``transfer_matrix_heatmap``, suffixed by the model and the targets' dataset where the
    matrix has several (one heatmap per model and dataset: sources cross datasets only where
    a study measured them)."""
    parts = [part for part, column in ((model, "model"), (dataset, "dataset")) if matrix[column].nunique() > 1]
    return "_".join(["transfer_matrix_heatmap", *parts])


def _sensitivity_sections(df: pd.DataFrame, options: Mapping[str, int]) -> list[Section]:
    """Teacher/student settings (a study with variants of how models train), where the
    table has students of more than one setting; checkpoint policies where it has several."""
    return [*_setting_sections(df, options), *_checkpoint_sections(df, options)]


def _setting_sections(df: pd.DataFrame, options: Mapping[str, int]) -> list[Section]:
    names = ("setting_gains", "setting_effects", "decoding_gains", "setting_curves")
    try:
        rows = with_settings(df)
    except XnerError as err:
        return [Section(name, name.replace("_", " "), skipped=str(err)) for name in names]
    if rows[rows["volume"] > 0].groupby(SETTING).ngroups < 2:
        return [Section(name, name.replace("_", " "), skipped="students of one teacher/student setting only")
                for name in names]
    gains = setting_gains(df, **options)
    effects = setting_effects(df)
    decodings = decoding_gains(df)
    return [
        Section("setting_gains", "Whole-pool gain over the teacher and F1 per doubling, per setting", table=gains,
                display=gains[[*SETTING, "source", "target", "n_seeds", "pool"]].assign(
                    teacher=gains["teacher_f1"].map(_num), student=gains["student_f1"].map(_num),
                    gain=_ci(gains["gain"], gains["gain_lo"], gains["gain_hi"]),
                    per_doubling=_ci(gains["slope"], gains["slope_lo"], gains["slope_hi"]))),
        Section("setting_effects", "gain ~ log2(volume) x teacher strength, student capacity (mixed model)",
                table=effects, display=effects.assign(coef=_ci(effects["coef"], effects["lo"], effects["hi"]),
                                                      p=_p(effects["p"]))[["term", "coef", "p"]]),
        Section("decoding_gains", "Whole-pool gain under each decoding", table=decodings, display=decodings.round(2)),
        Section("setting_curves", "Student F1 vs volume under each setting", figure=settings_figure(rows)),
    ]


def _checkpoint_sections(df: pd.DataFrame, options: Mapping[str, int]) -> list[Section]:
    """The seed-to-seed spread of zero-shot F1 per teacher checkpoint policy, where teachers
    of one setting were kept under more than one policy (it needs no students)."""
    spread = checkpoint_spread(df, **options)
    if spread["teacher_checkpoint"].nunique() < 2:
        return []
    versus = checkpoint_comparison(df, **options)
    return [Section("checkpoint_spread", "Seed-to-seed spread of zero-shot F1 per checkpoint policy", table=spread,
                    display=spread.assign(sd=_ci(spread["sd"], spread["sd_lo"], spread["sd_hi"]))),
            Section("checkpoint_comparison", "Each checkpoint policy minus the default on the same seeds (paired)",
                    table=versus, display=versus.assign(
                        sd_diff=_ci(versus["sd_diff"], versus["sd_diff_lo"], versus["sd_diff_hi"]),
                        f1_diff=_ci(versus["f1_diff"], versus["f1_diff_lo"], versus["f1_diff_hi"]),
                    )[["source", "teacher_train_size", "teacher_train_layers", "policy", "target", "n_seeds",
                       "sd_diff", "f1_diff"]])]


def _robustness_sections(df: pd.DataFrame, options: Mapping[str, int]) -> list[Section]:
    table = robustness_table(df, **options)
    if table.empty:
        reason = "no perturbed native/transfer rows with a clean counterpart"
        return [Section(name, name.replace("_", " "), skipped=reason)
                for name in ("robustness", "robustness_bars", "robustness_heatmap", "robustness_overlap")]
    return [
        Section("robustness", "F1 drop under perturbation, native vs transfer",
                table=table, display=_robustness_display(table)),
        Section("robustness_bars", "Clean vs perturbed F1 per target",
                figure=robustness_bars_figure(table)),
        Section("robustness_heatmap", "F1 drop per model and perturbation",
                figure=heatmap_figure(table)),
        _overlap_section(df, table, options),
    ]


def _overlap_section(df: pd.DataFrame, table: pd.DataFrame, options: Mapping[str, int]) -> Section:
    title = "F1 drop vs entity overlap, over models"
    overlap = robustness_overlap(df, table, **options)
    if overlap.empty or overlap["n_models"].max() < 3:
        return Section("robustness_overlap", title, skipped="fewer than 3 models with entity overlap measures")
    display = overlap[["model", "perturbation", "n_models"]].assign(
        **{"Pearson r (drop, overlap)": _ci(overlap["pearson"], overlap["pearson_lo"], overlap["pearson_hi"]),
           "p": _p(overlap["pearson_p"]),
           "Spearman rho": _ci(overlap["spearman"], overlap["spearman_lo"], overlap["spearman_hi"])})
    return Section("robustness_overlap", title, table=overlap, display=display)


# ---------------------------------------------------------------- study facts


def _environment_versions() -> pd.DataFrame:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return pd.DataFrame({"package": REPORTED_PACKAGES, "version": [version(p) for p in REPORTED_PACKAGES]})


def _run_versions(runs: pd.DataFrame) -> pd.DataFrame:
    """Distinct package versions recorded by the runs (their ``versions`` mappings)."""
    records = [
        {"package": package, "version": str(version)}
        for found in runs["versions"].dropna()
        for package, version in found.items()
    ]
    if not records:
        return pd.DataFrame(columns=["package", "versions", "runs"])
    table = pd.DataFrame.from_records(records)
    return table.groupby("package", as_index=False).agg(
        versions=("version", lambda v: ", ".join(sorted(set(v)))), runs=("version", "size")
    )


def _run_times(df: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """Wall time per run kind (and status) from the store's runs when known, else per
    evaluation kind from the results' ``seconds`` column (one value per run id); with the
    store's runs also the CPU time (``cpu_s``: the compute, which a paused or waiting worker
    does not add to; empty for a kind where some run predates its measurement)."""
    if runs is not None and not runs.empty:
        timed, keys = runs, ["kind", "status"]
    elif "seconds" in df:
        timed = df.drop_duplicates("run_id") if "run_id" in df else df
        keys = ["kind"]
    else:
        return pd.DataFrame()
    timed = timed.assign(seconds=pd.to_numeric(timed["seconds"], errors="coerce"))
    columns = {"runs": ("seconds", "size"), "total_s": ("seconds", "sum"), "mean_s": ("seconds", "mean"),
               "max_s": ("seconds", "max")}
    if "cpu_seconds" in timed and timed["cpu_seconds"].notna().any():
        timed = timed.assign(cpu_seconds=pd.to_numeric(timed["cpu_seconds"], errors="coerce"))
        columns["cpu_s"] = ("cpu_seconds", lambda cpu: cpu.sum(min_count=len(cpu)))
    return timed.groupby(keys, as_index=False).agg(**columns).round(1)


def _config_text(config: Mapping | Path | str | None) -> str:
    """The study config as text: a mapping dumped as YAML, a Path read, a str kept as is."""
    if config is None:
        return ""
    if isinstance(config, Mapping):
        return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)
    if isinstance(config, Path):
        return config.read_text(encoding="utf-8")
    return config


def _with_genus(df: pd.DataFrame) -> pd.DataFrame:
    """The tidy table with every ``genus`` and ``family`` filled from the language registry where
    the table left them empty (``"unknown"`` for a language the registry lacks). A table written
    before ``genus`` existed has one column ``family`` that holds the genus: it is read as such."""
    if "target" not in df:
        raise XnerError(f"the results have no 'target' column; columns: {', '.join(map(str, df.columns))}")

    def registry(field: str) -> Callable[[str], str]:
        def look_up(code: str) -> str:
            try:
                return getattr(get_language(code), field)
            except XnerError:
                return "unknown"

        return look_up

    if "genus" not in df and "family" in df:
        df = df.rename(columns={"family": "genus"})
    filled = {}
    for field in ("genus", "family"):
        given = df[field] if field in df else pd.Series(None, index=df.index, dtype=object)
        filled[field] = given.replace("", None).fillna(df["target"].map(registry(field)))
    return df.assign(**filled)


_TABLE_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": pd.read_csv,
    ".parquet": pd.read_parquet,
}
"""Exported tidy tables (``xner results --format csv|parquet``) a report can also start from."""


_RUN_COLUMNS = ("id", "kind", "status", "started", "finished", "seconds", "cpu_seconds", "versions", "host",
                "params", "metrics")


def _runs(store) -> pd.DataFrame:
    """The store's runs: ``id, kind, status, started, finished, seconds, cpu_seconds, versions,
    host``, and each run's ``params`` and ``metrics`` mappings (``cpu_seconds``: missing for runs
    recorded before xner measured CPU time)."""
    return pd.DataFrame.from_records(
        [
            {
                "id": record.id,
                "kind": record.kind,
                "status": record.status,
                "started": record.started,
                "finished": record.finished,
                "seconds": (record.timings or {}).get("seconds"),
                "cpu_seconds": (record.timings or {}).get("cpu_seconds"),
                "versions": record.versions,
                "host": record.host,
                "params": record.spec.params,
                "metrics": record.metrics,
            }
            for record in store.records()
        ],
        columns=list(_RUN_COLUMNS),
    )


_TRAINED_PARAMS = ("model", "lang", "dataset", "train_size", "seed")
_TRAINED_METRICS = ("train_sentences", "dev_f1", "best_epoch", "epochs_run")


def _trained_models_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished ``train`` run: the labelled-data models (teachers, native models),
    how they trained (layers, checkpoint policy), their dev F1 and where early stopping picked
    them. A zero-shot teacher's target F1 can differ by 20 between seeds whose source dev F1
    differ by 3; this table lets a reader see that selection, which the tidy results
    (evaluations only) do not hold, and join it to them by run id (``teacher_runs``)."""
    columns = ["run_id", *_TRAINED_PARAMS, "train_layers", "checkpoint", *_TRAINED_METRICS]
    trained = runs[(runs["kind"] == "train") & (runs["status"] == "done")]
    records = []
    for run_id, params, metrics in zip(trained["id"], trained["params"], trained["metrics"]):
        training = (params or {}).get("training") or {}
        records.append({"run_id": run_id, **{k: (params or {}).get(k) for k in _TRAINED_PARAMS},
                        "train_layers": layers_name(training.get("train_layers")),
                        "checkpoint": training.get("checkpoint", DEFAULT_CHECKPOINT),
                        **{k: (metrics or {}).get(k) for k in _TRAINED_METRICS}})
    table = pd.DataFrame.from_records(records, columns=columns)
    return table.sort_values(["model", "lang", "train_size", "train_layers", "checkpoint", "seed"], key=_sortable,
                             ignore_index=True)


def _sortable(column: pd.Series) -> pd.Series:
    """A column of mixed types (``train_layers``: 4 or ``"all"``) sorts as text, others as they are."""
    return column.map(str) if column.dtype == object else column


def _trained_models_section(runs: pd.DataFrame | None) -> Section:
    title = "Models trained on labelled data (teachers, native models): dev F1 and early stopping"
    if runs is None or not {"params", "metrics"} <= set(runs.columns):
        return Section("trained_models", title,
                       skipped="no run records with params and metrics (a results table, not a store)")
    table = _trained_models_table(runs)
    if table.empty:
        return Section("trained_models", title, skipped="no finished train run")
    display = table.assign(dev_f1=[_num(v, 1) for v in table["dev_f1"]])
    return Section("trained_models", title, table=table, display=display)


def _ner_sections(frame: pd.DataFrame, covariates: pd.DataFrame | None, options: Mapping[str, int]) -> list[Section]:
    return [*_volume_sections(frame, options), *_beyond_split_sections(frame, options),
            *_transfer_sections(frame, covariates, options),
            *_robustness_sections(frame, options), *_matrix_sections(frame), *_sensitivity_sections(frame, options)]


def _document_sections(frame: pd.DataFrame, runs: pd.DataFrame | None, options: Mapping[str, int]) -> list[Section]:
    """Accuracy of the document tasks and its drop under P4/P5 (:mod:`xner.tasks.report`), and
    every evaluation's per-example predictions (from a store)."""
    titles = {"document_accuracy": "Document tasks: accuracy (mean over seeds), clean and perturbed",
              "document_robustness": "Document tasks: accuracy drop vs the word overlap P4/P5 remove",
              "document_native_vs_transfer": "Document tasks: native vs transferred models, per target"}
    sections = [Section(name, titles[name], table=table, display=table.astype(object))
                for name, table in document_tables(frame, **options).items()]
    title = "Document tasks: per-example predictions"
    predictions = document_predictions(runs) if runs is not None else pd.DataFrame()
    if predictions.empty:
        return [*sections, Section("document_predictions", title,
                                   skipped="no run records with predictions (a results table, not a store)")]
    text = (f"{len(predictions):,} predictions of {predictions['run_id'].nunique()} evaluations in "
            "tables/document_predictions.csv.gz (run_id, task, role, source, target, seed, perturbation, index, "
            "gold, predicted): every accuracy above is the share of rows with gold == predicted.")
    return [*sections, Section("document_predictions", title, table=predictions, text=text, compressed=True)]


def _continued(frame: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the earlier study's student rows of the curves (model, source, target)
    that ``frame``'s students continue; rows of a run ``frame`` already has are dropped."""
    def curves(table: pd.DataFrame) -> pd.Series:
        return table[["model", "source", "target"]].astype(str).agg("<-".join, axis=1)

    students = frame[frame["kind"] == "student"]
    if students.empty:
        raise XnerError("--continues: the study has no students, so no curve to continue")
    wanted = set(curves(students))
    rows = earlier[(earlier["kind"] == "student") & ~earlier["run_id"].isin(frame["run_id"])]
    if not rows.empty:
        rows = rows[curves(rows).isin(wanted)]
    if rows.empty:
        raise XnerError(f"--continues: the earlier results have no student of this study's curves "
                        f"({', '.join(sorted(wanted))})")
    return pd.concat([frame, _without_shared_teachers(students, rows)], ignore_index=True)


def _without_shared_teachers(students: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """The earlier student rows minus the teachers (volume 0) this study also evaluated, after
    checking that both studies' teachers score the same: a curve continues only from the same
    teacher under the same scoring. A changed xner (training, decoding) gives other teachers
    under other run ids; their points joined would show the change as a volume effect.

    Raises:
        XnerError: a teacher (model, source, target, seed, perturbation) scores differently.
    """
    keys = ["model", "source", "target", "seed", "perturbation"]

    def teachers(table: pd.DataFrame) -> pd.Series:
        zero = table[pd.to_numeric(table["volume"], errors="coerce") == 0]
        return zero.astype({key: str for key in keys}).groupby(keys)["f1"].mean()

    mine, theirs = teachers(students), teachers(earlier)
    for key in mine.index.intersection(theirs.index):
        if abs(mine[key] - theirs[key]) > 1e-6:
            model, source, target, seed, perturbation = key
            raise XnerError(
                f"--continues: the earlier results' teacher of {target} <- {source} ({model}, seed {seed}, "
                f"{perturbation}) scores {theirs[key]:.2f} F1, this study's {mine[key]:.2f}: not the same teacher "
                "or not scored the same way, so the curves cannot be joined (run the whole curve in one study)")
    shared = earlier.astype({key: str for key in keys}).set_index(keys).index.isin(mine.index)
    return earlier[~(shared & (pd.to_numeric(earlier["volume"], errors="coerce") == 0).to_numpy())]


def _load(store_or_frame: pd.DataFrame | str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The tidy results and, from a store, its runs."""
    if isinstance(store_or_frame, pd.DataFrame):
        return store_or_frame, None
    path = Path(store_or_frame)
    if path.suffix in _TABLE_READERS:
        if not path.is_file():
            raise XnerError(f"{path}: no such results table")
        return _TABLE_READERS[path.suffix](path), None
    from xner.study.store import ResultStore  # only study/ knows how results are stored

    with ResultStore(path, create=False) as store:
        return store.frame(), _runs(store)


# ---------------------------------------------------------------- writers


def _write_section(section: Section, out: Path) -> None:
    if section.table is not None:
        tables = out / "tables"
        tables.mkdir(exist_ok=True)
        suffix, compression = (".csv.gz", {"method": "gzip", "mtime": 0}) if section.compressed else (".csv", None)
        section.table.to_csv(tables / f"{section.name}{suffix}", index=False, compression=compression)
        if section.display is None:  # a table to recompute from, not to read: only the CSV
            return
        display = section.display.fillna(NA)
        (tables / f"{section.name}.md").write_text(display.to_markdown(index=False) + "\n", encoding="utf-8")
        (tables / f"{section.name}.tex").write_text(
            display.to_latex(index=False, escape=True, caption=section.title.replace("_", " "),
                             label=f"tab:{section.name}"),
            encoding="utf-8",
        )
        if section.text:
            (tables / f"{section.name}.txt").write_text(section.text + "\n", encoding="utf-8")
    if section.figure is not None:
        figures = out / "figures"
        figures.mkdir(exist_ok=True)
        for suffix in ("png", "svg"):
            section.figure.savefig(figures / f"{section.name}.{suffix}", dpi=120)


def _markdown(sections: list[Section], facts: list[Section]) -> str:
    lines = ["# xner study report", ""]
    for section in [*sections, *facts]:
        lines += [f"## {section.title}", ""]
        if section.skipped:
            lines += [f"Skipped: {section.skipped}.", ""]
            continue
        if section.text and section.display is None:
            lines += ["```", section.text, "```", ""]
        elif section.text:
            lines += [section.text.split("\n\n", 1)[0], ""]
        if section.display is not None:
            lines += [section.display.fillna(NA).to_markdown(index=False), ""]
        if section.figure is not None:
            lines += [f"![{section.title}](figures/{section.name}.png)", ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: left; }
thead th { border-bottom: 2px solid #444; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.skipped { color: #a33; }
"""


def _html_section(section: Section, out: Path) -> str:
    parts = [f"<section><h2>{html.escape(section.title)}</h2>"]
    if section.skipped:
        parts.append(f'<p class="skipped">Skipped: {html.escape(section.skipped)}.</p>')
    if section.text:
        parts.append(f"<pre>{html.escape(section.text)}</pre>")
    if section.display is not None:
        parts.append(section.display.to_html(index=False, border=0, na_rep=NA, escape=True))
    if section.figure is not None:
        png = (out / "figures" / f"{section.name}.png").read_bytes()
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img alt="{html.escape(section.title)}" '
                     f'src="data:image/png;base64,{data}"></figure>')
    parts.append("</section>")
    return "\n".join(parts)


def _html(sections: list[Section], facts: list[Section], summary: str, out: Path) -> str:
    body = "\n".join(_html_section(s, out) for s in [*sections, *facts])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>xner study report</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>xner study report</h1><p>{html.escape(summary)}</p>\n{body}\n</body></html>\n"
    )


def _facts(df: pd.DataFrame, runs: pd.DataFrame | None, config: Mapping | Path | str | None) -> list[Section]:
    """Study config, versions and run times: what a reader needs to reproduce the numbers."""
    text = _config_text(config)
    times = _run_times(df, runs)
    facts = [
        Section("config", "Study config", text=text) if text
        else Section("config", "Study config", skipped="no study config was given"),
        Section("environment", "Versions of the environment that wrote this report",
                display=_environment_versions()),
    ]
    if runs is not None and "versions" in runs:
        facts.append(Section("run_versions", "Versions recorded by the runs", display=_run_versions(runs)))
    facts.append(
        Section("run_times", "Run times (seconds)", display=times) if not times.empty
        else Section("run_times", "Run times (seconds)", skipped="the results record no run times")
    )
    return facts


def _summary(df: pd.DataFrame) -> str:
    runs = df["run_id"].nunique() if "run_id" in df else len(df)
    kinds = ", ".join(f"{k} {n}" for k, n in df["kind"].value_counts().sort_index().items())
    return (f"{len(df)} evaluations of {runs} runs ({kinds}); models: "
            f"{', '.join(sorted(map(str, df['model'].unique())))}; targets: "
            f"{', '.join(sorted(map(str, df['target'].unique())))}.")


def write_report(
    store_or_frame: pd.DataFrame | str | Path,
    out_dir: str | Path,
    config: Mapping | Path | str | None = None,
    *,
    runs: pd.DataFrame | None = None,
    covariates: pd.DataFrame | None = None,
    continues: pd.DataFrame | str | Path | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Path:
    """Analyse a study's results and write the report folder; return the path of report.html.

    Args:
        store_or_frame: a result store (SQLite file, read with
            ``xner.study.store.ResultStore``), an exported tidy table (``.csv``/``.parquet``)
            or the tidy results DataFrame itself.
        out_dir: folder to write (created; existing files of the same names are replaced).
        config: the study config (mapping, YAML/JSON text, or a Path to its file) to print.
        runs: one row per run (``kind, status, seconds, versions`` -- a package -> version
            mapping; ``params`` and ``metrics`` mappings for the trained-models table) for
            run times, versions and trained models; read from the store when given a store.
        covariates: per-pair covariates for :func:`xner.analysis.transfer_correlates`;
            ``None`` computes URIEL distances (lang2vec; its first use loads for ~10 s).
        continues: an earlier study's results (store, table or DataFrame) whose curves this
            study continues: its student rows of the same model, source and target as this
            study's students join the analysis (this study's runs win where run ids repeat),
            e.g. the volume study's in-split points under the extended study's raw-text ones.
        n_resamples, seed: bootstrap resamples and seed of every CI.

    Returns:
        ``out_dir / "report.html"``.

    Raises:
        XnerError: the store does not exist or holds no results.

    >>> write_report(results, tmp_path / "report", n_resamples=200)  # doctest: +SKIP
    """
    frame, stored_runs = _load(store_or_frame)
    if frame.empty:
        raise XnerError("no finished evaluation in the results: nothing to report yet")
    if continues is not None:
        frame = _continued(frame, _load(continues)[0])
    frame = _with_genus(frame)
    runs = stored_runs if runs is None else runs
    options = {"n_resamples": n_resamples, "seed": seed}
    ner, documents = split_tasks(frame)
    sections = [
        *(_ner_sections(ner, covariates, options) if not ner.empty else []),
        _trained_models_section(runs),
        *(_document_sections(documents, runs, options) if not documents.empty else []),
    ]
    facts = _facts(frame, runs, config)
    # Written whole into a temporary folder, then moved in: a full disk leaves no half report.
    with atomic_directory(out_dir, merge=True) as out:
        frame.to_csv(out / "results.csv", index=False)
        for section in sections:
            _write_section(section, out)
        (out / "report.md").write_text(_markdown(sections, facts), encoding="utf-8")
        (out / "report.html").write_text(_html(sections, facts, _summary(frame), out), encoding="utf-8")
    return Path(out_dir) / "report.html"
