"""Per-layer tables and model comparisons as text, Markdown, CSV, JSON and HTML.

One schema for every format of the per-layer table (docs/reports.md, "The per-layer table"):

- the same rows in every format: ``report.folded()`` by default (in-place ReLU/dropout/flatten
  merged into their producer, as the lectures print them), ``report.records`` with
  ``fold=False`` (one row per node);
- a totals row or object in every format, taken from ``report.totals`` (never summed here);
- the human formats (text, markdown, html) show ``DISPLAY_COLUMNS``; the machine formats (csv,
  json) carry ``MACHINE_FIELDS``: every LayerRecord field plus ``output`` and ``rf``, the same
  text the human formats show;
- extra columns (``extra``, e.g. a peer tool's count) appear in every format with their totals.

Reports never compute costs: they lay out what archcost.analysis computed.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict, fields

from archcost.analysis import LayerRecord, Report
from archcost.errors import ArchcostError, quote

FORMATS = ("text", "markdown", "csv", "json", "html")


def human(n: float, unit: str = "") -> str:
    """Exact below 10,000; else 3 significant digits with K/M/G/T: 4096 -> '4,096',
    150528 -> '151K', 3211264 -> '3.21M'."""
    if abs(n) < 10_000 and float(n).is_integer():
        return f"{int(n):,}{unit}"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor * 0.9995:
            value = n / factor
            digits = 0 if abs(value) >= 99.95 else 1 if abs(value) >= 9.995 else 2
            return f"{value:.{digits}f}{suffix}{unit}"
    return f"{n:g}{unit}"


def human_bytes(n: float) -> str:
    """Decimal megabytes as the lectures use them: 61,050,784 -> '61.05 MB'."""
    for factor, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
        if n >= factor:
            return f"{n / factor:.2f} {suffix}"
    return f"{n} B"


def shape_text(shape: tuple, layout: str = "NCHW") -> str:
    """Per-sample shape as the lectures write it, channels last: (N, C, H, W) -> 'HxWxC';
    a channels-last (N, H, W, C) map prints the same way; (N, F) -> 'F'."""
    dims = dict(zip(layout, shape))
    if len(shape) == 4 and set("CHW") <= set(layout):
        return f"{dims['H']}x{dims['W']}x{dims['C']}"
    return "x".join(str(d) for d in shape[1:])



# --- the per-layer table ---------------------------------------------------------------------

DISPLAY_COLUMNS = ("layer", "type", "output", "memory", "weights", "params", "MACs", "RF")
COLUMNS = DISPLAY_COLUMNS  # the name before the schema had one
RECORD_FIELDS = tuple(f.name for f in fields(LayerRecord))
MACHINE_FIELDS = (*RECORD_FIELDS, "output", "rf")
# The LayerRecord fields whose totals are the sums over the layers: the CSV TOTAL row fills
# these (from report.totals) and leaves the other cells empty.
TOTAL_FIELDS = ("activations", "activation_bytes", "weights", "biases", "params", "buffers", "macs", "other",
                "flops")


def _rf_size(v) -> str:
    # A field after a resize may be fractional (3.5 input pixels): up to 4 decimals, no trailing zeros.
    return f"{v:.4f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def rf_text(rec: LayerRecord) -> str:
    """Receptive field of one record, height x width in input pixels: '212x212' ('3.5x3.5' after
    a resize)."""
    return f"{_rf_size(rec.rf_h)}x{_rf_size(rec.rf_w)}"


def title_line(report: Report) -> str:
    shape = "x".join(str(d) for d in report.input_shape)
    return f"{report.model}: {report.graph.description} | input {shape}, batch {report.batch}, {report.dtype}"


def _check_format(fmt: str, formats=FORMATS) -> None:
    if fmt not in formats:
        raise ArchcostError(f"format: unknown {quote(fmt)}; known: {', '.join(formats)}")


def _rows_and_extra(report: Report, fold: bool, extra) -> tuple[list[LayerRecord], list]:
    records = report.folded() if fold else report.records
    extra = list(extra or [])
    for header, values, _ in extra:
        if len(values) != len(records):
            raise ArchcostError(f"extra column {quote(header)}: {len(values)} values for {len(records)} rows")
    return records, extra


def display_row(rec: LayerRecord, extra_values=()) -> tuple[str, ...]:
    """One row of the human formats, in DISPLAY_COLUMNS order, then the extra columns."""
    return (
        rec.name,
        rec.label,
        shape_text(rec.output_shape, rec.layout),
        human(rec.activations),
        f"{rec.weights:,}",
        f"{rec.params:,}",
        human(rec.macs),
        rf_text(rec),
        *(human(v) for v in extra_values),
    )


def display_total(report: Report, extra=()) -> tuple[str, ...]:
    """The TOTAL row of the human formats: report.totals, and each extra column's total."""
    t = report.totals
    return ("TOTAL", "", "", human(t["activations"]), f"{t['weights']:,}", f"{t['params']:,}", human(t["macs"]), "",
            *(human(total) for _, _, total in extra))


def record_fields(rec: LayerRecord) -> dict:
    """One row of the machine formats: every LayerRecord field (output_shape batch-first, in the
    axis order of ``layout``), then ``output`` and ``rf`` as the human formats print them."""
    row = asdict(rec)
    row["inputs"] = list(rec.inputs)
    row["output_shape"] = list(rec.output_shape)
    row["output"] = shape_text(rec.output_shape, rec.layout)
    row["rf"] = rf_text(rec)
    return row


def summary_lines(report: Report) -> list[str]:
    t = report.totals
    per = f" per batch of {report.batch}" if report.batch > 1 else " per image"
    return [
        f"params: {t['params']:,} (weights {t['weights']:,} + biases {t['biases']:,}) = "
        f"{human_bytes(t['param_bytes'])}; buffers (BN running stats): {t['buffers']:,}",
        f"memory: {t['activations']:,} activation elements = {human_bytes(t['activation_bytes'])}{per} "
        f"(forward only); peak live {human_bytes(t['peak_activation_bytes'])} (training: --train)",
        f"MACs: {t['macs']:,} ({human(t['macs'])}); other ops: {t['other']:,}; "
        f"FLOPs (2 x MACs + other): {human(t['flops'])}",
        *(f"note: {note}" for note in report.graph.notes),
    ]


def _grid(header, rows, right_from: int) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            str(c).rjust(w) if i >= right_from else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _markdown(header, rows, left: int) -> list[str]:
    def cell(c):
        return str(c).replace("|", "\\|")

    align = "|" + "|".join(["---"] * left + ["---:"] * (len(header) - left)) + "|"
    return ["| " + " | ".join(map(cell, header)) + " |", align, *("| " + " | ".join(map(cell, r)) + " |" for r in rows)]


def _html(cls: str, caption: str, header, rows, foot=(), notes=()) -> str:
    """A proper HTML table (escaped): caption, thead, tbody, tfoot; ``notes`` as a list after it."""
    def tr(cells, tag="td"):
        return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"

    parts = [f'<table class="{cls}">', f"<caption>{html.escape(caption)}</caption>",
             f"<thead>{tr(header, 'th')}</thead>", "<tbody>", *(tr(r) for r in rows), "</tbody>"]
    if foot:
        parts += ["<tfoot>", *(tr(r) for r in foot), "</tfoot>"]
    parts.append("</table>")
    if notes:
        parts += ['<ul class="summary">', *(f"<li>{html.escape(n)}</li>" for n in notes), "</ul>"]
    return "\n".join(parts)


def _csv(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def layer_table(report: Report, fmt: str = "text", fold: bool = True, extra: list | None = None,
                train=None) -> str:
    """The per-layer table in ``fmt`` (one of FORMATS); the same rows and totals in every format.

    ``fold``: rows of ``report.folded()`` (default) or one row per node. ``extra``: further
    columns, each ``(header, values, total)`` with one int per row (per folded row when ``fold``),
    e.g. a peer tool's count from archcost/conventions.py."""
    _check_format(fmt)
    if train is not None:
        extra = [*(extra or []), *train_columns(report, train, fold)]
    records, extra = _rows_and_extra(report, fold, extra)
    if fmt == "json":
        data = to_json(report, fold=fold, extra=extra)
        if train is not None:
            data["training"] = dict(train.config)
            data["totals"].update(train.totals)
        return json.dumps(data, indent=2)
    if fmt == "csv":
        header = (*MACHINE_FIELDS, *(h for h, _, _ in extra))
        rows = []
        for i, rec in enumerate(records):
            row = record_fields(rec)
            row["inputs"] = " ".join(rec.inputs)
            row["output_shape"] = "x".join(str(d) for d in rec.output_shape)
            rows.append([*(row[f] for f in MACHINE_FIELDS), *(values[i] for _, values, _ in extra)])
        total = {"name": "TOTAL", **{f: report.totals[f] for f in TOTAL_FIELDS}}
        rows.append([*(total.get(f, "") for f in MACHINE_FIELDS), *(t for _, _, t in extra)])
        return _csv(header, rows)
    columns = (*DISPLAY_COLUMNS, *(h for h, _, _ in extra))
    rows = [display_row(r, [values[i] for _, values, _ in extra]) for i, r in enumerate(records)]
    totals = display_total(report, extra)
    title = title_line(report)
    notes = summary_lines(report) + (train_summary_lines(train) if train is not None else [])
    if fmt == "html":
        return _html("archcost-layers", title, columns, rows, foot=[totals], notes=notes)
    if fmt == "markdown":
        body = _markdown(columns, [*rows, totals], left=3)
        return "\n".join([f"**{title}**", "", *body, "", *(f"- {s}" for s in notes)])
    lines = _grid(columns, rows + [totals], right_from=3)
    lines.insert(-1, lines[1])
    return "\n".join([title, "", *lines, "", *notes])


# --- the training columns ----------------------------------------------------------------------

# Per-layer keys of a training report shown as columns (the JSON/CSV names are these keys).
TRAIN_COLUMNS = ("backward_macs", "saved_bytes", "train_live_bytes")


def _folded_spans(report: Report) -> list[tuple[int, int]]:
    """(start, end) record positions of each row of ``report.folded()``."""
    names = [rec.name for rec in report.records]
    starts, position = [], 0
    for row in report.folded():
        position = names.index(row.name, position)
        starts.append(position)
    return list(zip(starts, starts[1:] + [len(names)]))


def train_columns(report: Report, train, fold: bool) -> list:
    """Extra columns of a training report (archcost.training.TrainingReport), aligned with the
    table's rows: backward MACs and saved bytes add up over a folded row, live bytes take its
    maximum. The totals are the report's: backward_macs, train_saved_bytes, train_peak_bytes."""
    recs = train.records
    spans = _folded_spans(report) if fold else [(i, i + 1) for i in range(len(recs))]
    macs = [sum(r.backward_macs for r in recs[a:b]) for a, b in spans]
    saved = [sum(r.saved_bytes for r in recs[a:b]) for a, b in spans]
    live = [max(r.train_live_bytes for r in recs[a:b]) for a, b in spans]
    t = train.totals
    return [("backward_macs", macs, t["backward_macs"]), ("saved_bytes", saved, t["train_saved_bytes"]),
            ("train_live_bytes", live, t["train_peak_bytes"])]


def train_summary_lines(train) -> list[str]:
    t, c = train.totals, train.config
    mp = ", mixed precision" if c["mixed_precision"] else ""
    frozen = f", {len(c['frozen'])} layers frozen" if c["frozen"] else ""
    ckpt = f", checkpoint {c['checkpoint']}" if c["checkpoint"] != "none" else ""
    recompute = f" + recompute {human(t['recompute_macs'])}" if t["recompute_macs"] else ""
    return [
        f"training step ({c['policy']} saving policy, {c['optimizer']}{mp}{frozen}{ckpt}): MACs forward "
        f"{human(t['forward_macs'])} + backward {human(t['backward_macs'])} (data {human(t['backward_data_macs'])}, "
        f"weight {human(t['backward_weight_macs'])}){recompute} = {human(t['train_step_macs'])}, "
        f"{t['train_step_ratio']:.2f}x the forward; FLOPs {human(t['train_step_flops'])}",
        f"training memory: peak {human_bytes(t['train_peak_bytes'])} at {t['peak_step']}: params "
        f"{human_bytes(t['at_peak_param_bytes'])}, buffers {human_bytes(t['at_peak_buffer_bytes'])}, "
        f"master weights {human_bytes(t['at_peak_master_bytes'])}, gradients {human_bytes(t['at_peak_param_grad_bytes'])}, "
        f"optimizer {human_bytes(t['at_peak_optimizer_bytes'])}, input and labels "
        f"{human_bytes(t['at_peak_input_bytes'] + t['at_peak_labels_bytes'])}, activations and kept tensors "
        f"{human_bytes(t['at_peak_activation_bytes'] + t['at_peak_extra_bytes'] + t['at_peak_probs_bytes'])}, activation "
        f"gradients {human_bytes(t['at_peak_grad_bytes'])}",
        f"kept for backward: {human_bytes(t['train_saved_bytes'])} (rules: docs/training.md)",
        *_segment_lines(train),
    ]


def _segment_lines(train, shown: int = 6) -> list[str]:
    """The checkpointed segments by their first and last layers."""
    order, segments = train.plan.order, train.plan.segments
    if not segments:
        return []
    names = [order[a] if b - a == 1 else f"{order[a]}..{order[b - 1]}" for a, b in segments]
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    layers = sum(b - a for a, b in segments)
    return [f"checkpointed: {len(segments)} segments, {layers} layers recomputed in the backward: "
            f"{', '.join(names[:shown])}{more}"]


def to_json(report: Report, fold: bool = False, extra: list | None = None) -> dict:
    """The per-layer table as a dict: ``layers`` (rows of MACHINE_FIELDS and the extra columns),
    ``rows`` (how many), ``folded``, and ``totals`` (report.totals and each extra column's total;
    ``totals["layers"]`` counts the graph's nodes, the input excluded, whatever the rows)."""
    records, extra = _rows_and_extra(report, fold, extra)
    layers = []
    for i, rec in enumerate(records):
        row = record_fields(rec)
        for header, values, _ in extra:
            row[header] = values[i]
        layers.append(row)
    totals = dict(report.totals)
    for header, _, total in extra:
        totals[header] = total
    return {
        "model": report.model,
        "description": report.graph.description,
        "notes": list(report.graph.notes),
        "input_shape": list(report.input_shape),
        "batch": report.batch,
        "dtype": report.dtype,
        "folded": fold,
        "rows": len(layers),
        "layers": layers,
        "totals": totals,
    }


# --- totals side by side ---------------------------------------------------------------------

COMPARE_ROWS = (
    ("params", "params"),
    ("weights", "weights"),
    ("MACs", "macs"),
    ("other ops", "other"),
    ("FLOPs (2xMACs+other)", "flops"),
    ("activations", "activations"),
    ("activation bytes", "activation_bytes"),
    ("peak live bytes", "peak_activation_bytes"),
    ("layers", "layers"),
)


def compare_table(reports: list[Report], fmt: str = "text") -> str:
    """Totals side by side; each model after the first gets a ratio column against the first.
    Every format has the rows of COMPARE_ROWS; csv and json carry the exact values."""
    _check_format(fmt)
    base = reports[0].totals

    def ratio(r, key):
        return r.totals[key] / base[key] if base[key] else None

    if fmt == "json":
        return json.dumps(
            {
                "models": [r.model for r in reports],
                "totals": {r.model: dict(r.totals) for r in reports},
                "ratios": {r.model: {key: ratio(r, key) for _, key in COMPARE_ROWS} for r in reports[1:]},
            },
            indent=2,
        )
    first = reports[0].model
    if fmt == "csv":
        header = ["quantity", "key", first]
        for r in reports[1:]:
            header += [r.model, f"{r.model}/{first}"]
        rows = []
        for title, key in COMPARE_ROWS:
            row = [title, key, base[key]]
            for r in reports[1:]:
                value = ratio(r, key)
                row += [r.totals[key], "" if value is None else f"{value:.6f}"]
            rows.append(row)
        return _csv(header, rows)
    header = ["", first]
    for r in reports[1:]:
        header += [r.model, f"/{first}"]
    rows = []
    for title, key in COMPARE_ROWS:
        row = [title, f"{base[key]:,}"]
        for r in reports[1:]:
            value = ratio(r, key)
            row += [f"{r.totals[key]:,}", "-" if value is None else f"{value:.3f}x"]
        rows.append(row)
    if fmt == "html":
        caption = f"totals of {', '.join(r.model for r in reports)}; ratios to {first}"
        return _html("archcost-compare", caption, header, rows)
    if fmt == "markdown":
        return "\n".join(_markdown(header, rows, left=1))
    return "\n".join(_grid(header, rows, right_from=1))


DESIGN_ROWS = (("params", "params"), ("MACs", "macs"), ("activations", "activations"),
               ("peak live bytes", "peak_activation_bytes"))


def design_table(pairs: list[tuple[str, str, Report, Report]], fmt: str = "text") -> str:
    """Design comparisons: for each (title, source, baseline, alternative), the totals of both and
    the ratio alternative / baseline."""
    def ratio(a, b):
        return b / a if a else None

    if fmt == "json":
        return json.dumps(
            [
                {
                    "design": title,
                    "source": source,
                    "baseline": base.model,
                    "alternative": alt.model,
                    "baseline_totals": {key: base.totals[key] for _, key in DESIGN_ROWS},
                    "alternative_totals": {key: alt.totals[key] for _, key in DESIGN_ROWS},
                    "ratios": {key: ratio(base.totals[key], alt.totals[key]) for _, key in DESIGN_ROWS},
                }
                for title, source, base, alt in pairs
            ],
            indent=2,
        )
    header = ("baseline -> alternative", "quantity", "baseline", "alternative", "ratio")
    rows = []
    for title, source, base, alt in pairs:
        for i, (name, key) in enumerate(DESIGN_ROWS):
            r = ratio(base.totals[key], alt.totals[key])
            rows.append((
                f"{base.model} -> {alt.model}" if i == 0 else "",
                name,
                f"{base.totals[key]:,}",
                f"{alt.totals[key]:,}",
                f"{r:.3f}x" if r is not None else "-",
            ))
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("design", "source", "baseline", "alternative", "quantity", "baseline_value",
                         "alternative_value", "ratio"))
        for title, source, base, alt in pairs:
            for name, key in DESIGN_ROWS:
                r = ratio(base.totals[key], alt.totals[key])
                writer.writerow((title, source, base.model, alt.model, key, base.totals[key], alt.totals[key],
                                 "" if r is None else f"{r:.6f}"))
        return out.getvalue()
    if fmt == "markdown":
        return "\n".join(
            ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|"]
            + ["| " + " | ".join(r) + " |" for r in rows]
            + ["", *(f"- {b.model} -> {a.model}: {title} ({source})" for title, source, b, a in pairs)]
        )
    if fmt == "html":
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
        )
        return f'<table class="designs">\n<thead><tr>{cells}</tr></thead>\n<tbody>{body}</tbody>\n</table>'
    notes = [f"  {b.model} -> {a.model}: {title} [{source}]" for title, source, b, a in pairs]
    return "\n".join(_grid(header, rows, right_from=2) + ["", "ratio = alternative / baseline", *notes])


GROUP_COLUMNS = ("group", "layers", "MACs", "MACs %", "params", "params %", "activations", "activations %")


def group_table(report: Report, rows, by: str, fmt: str = "text") -> str:
    """The rows of archcost.grouping.group as a table: values and percentage shares, then a TOTAL
    row (the table's rows counted; MACs, params and activations from report.totals)."""
    _check_format(fmt)
    title = f"{report.model}: MACs, params and activations by {by}"
    t = report.totals
    total = {"group": "TOTAL", "layers": sum(r.layers for r in rows), "macs": t["macs"], "params": t["params"],
             "activations": t["activations"]}
    if fmt == "json":
        return json.dumps({"model": report.model, "by": by, "groups": [asdict(r) for r in rows],
                           "totals": {k: v for k, v in total.items() if k != "group"}}, indent=2)
    if fmt == "csv":
        from archcost.grouping import GroupRow

        names = [f.name for f in fields(GroupRow)]
        body = [[getattr(r, name) for name in names] for r in rows]
        return _csv(names, [*body, [total.get(name, "") for name in names]])
    body = [
        (r.group, str(r.layers), human(r.macs), f"{100 * r.macs_share:.2f}%", f"{r.params:,}",
         f"{100 * r.params_share:.2f}%", human(r.activations), f"{100 * r.activations_share:.2f}%")
        for r in rows
    ]
    foot = ("TOTAL", str(total["layers"]), human(t["macs"]), "", f"{t['params']:,}", "", human(t["activations"]), "")
    if fmt == "html":
        return _html("archcost-groups", title, GROUP_COLUMNS, body, foot=[foot])
    if fmt == "markdown":
        return "\n".join([f"**{title}**", "", *_markdown(GROUP_COLUMNS, [*body, foot], left=1)])
    lines = _grid(GROUP_COLUMNS, [*body, foot], right_from=1)
    lines.insert(-1, lines[1])
    return "\n".join([title, "", *lines])


CONVENTION_COLUMNS = ("convention", "unit", "total", "exact", "ratio", "includes")


def conventions_table(report: Report, rows: list[dict], fmt: str = "text") -> str:
    """The rows of archcost.conventions.summary: one per tool convention, with its ratio to
    archcost's MACs (or to archcost's forward activation bytes for the memory conventions)."""
    if fmt == "json":
        return json.dumps({"model": report.model, "batch": report.batch, "dtype": report.dtype, "conventions": rows},
                          indent=2)

    def ratio(row):
        if row["ratio"] is None:
            return "-"
        return f"{row['ratio']:.3f}x " + ("MACs" if row["base"] == "archcost MACs" else "act")

    def total(row):
        return human_bytes(row["total"]) if row["unit"] == "bytes" else human(row["total"])

    table = [(r["name"], r["unit"], total(r), f"{r['total']:,}", ratio(r), r["includes"]) for r in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["convention", "unit", "total", "ratio", "ratio_to", "includes", "source"])
        for r in rows:
            writer.writerow([r["name"], r["unit"], r["total"], r["ratio"], r["base"], r["includes"], r["source"]])
        return out.getvalue()
    shape = "x".join(str(d) for d in report.input_shape)
    title = f"{report.model} | input {shape}, batch {report.batch}, {report.dtype}"
    note = "ratio: to archcost's MACs, or ('act') to archcost's forward activation bytes"
    if fmt == "html":
        return _html("archcost-conventions", title, CONVENTION_COLUMNS, table, notes=[note])
    if fmt == "markdown":
        header = "| " + " | ".join(CONVENTION_COLUMNS) + " |"
        align = "|---|---|---:|---:|---:|---|"
        return "\n".join([f"**{title}**", "", header, align, *("| " + " | ".join(r) + " |" for r in table), "", note])
    grid = _grid(CONVENTION_COLUMNS[:-1], [r[:-1] for r in table], right_from=2)
    includes = [CONVENTION_COLUMNS[-1], "-" * max(len(r[-1]) for r in table), *(r[-1] for r in table)]
    return "\n".join([title, "", *(f"{line}  {text}" for line, text in zip(grid, includes)), "", note])
