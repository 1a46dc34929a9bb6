"""Per-layer tables and model comparisons as text, Markdown, CSV, JSON and HTML."""

from __future__ import annotations

import json
from dataclasses import asdict

from archcost.analysis import LayerRecord, Report

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


COLUMNS = ("layer", "type", "output", "memory", "weights", "params", "MACs")


def _row(rec: LayerRecord) -> tuple[str, ...]:
    return (
        rec.name,
        rec.label,
        shape_text(rec.output_shape, rec.layout),
        human(rec.activations),
        f"{rec.weights:,}",
        f"{rec.params:,}",
        human(rec.macs),
    )


def _total_row(report: Report) -> tuple[str, ...]:
    t = report.totals
    return ("TOTAL", "", "", human(t["activations"]), f"{t['weights']:,}", f"{t['params']:,}", human(t["macs"]))


def summary_lines(report: Report) -> list[str]:
    t = report.totals
    per = f" per batch of {report.batch}" if report.batch > 1 else " per image"
    return [
        f"params: {t['params']:,} (weights {t['weights']:,} + biases {t['biases']:,}) = "
        f"{human_bytes(t['param_bytes'])}; buffers (BN running stats): {t['buffers']:,}",
        f"memory: {t['activations']:,} activation elements = {human_bytes(t['activation_bytes'])}{per} "
        f"(forward only); peak live {human_bytes(t['peak_activation_bytes'])}; "
        f"training estimate {human_bytes(t['training_bytes'])}",
        f"MACs: {t['macs']:,} ({human(t['macs'])}); other ops: {t['other']:,}; "
        f"FLOPs (2 x MACs + other): {human(t['flops'])}",
    ]


def _grid(header, rows, right_from: int) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            str(c).rjust(w) if i >= right_from else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def layer_table(report: Report, fmt: str = "text", fold: bool = True, extra: list | None = None) -> str:
    """``extra``: further columns, each ``(header, values, total)`` with one int per printed row
    (per folded row when ``fold``), e.g. a peer tool's count from archcost/conventions.py."""
    records = report.folded() if fold else report.records
    extra = extra or []
    shape = "x".join(str(d) for d in report.input_shape)
    title = f"{report.model}: {report.graph.description} | input {shape}, batch {report.batch}, {report.dtype}"
    if fmt == "json":
        data = to_json(report, records)
        for header, values, total in extra:
            for row, value in zip(data["layers"], values):
                row[header] = value
            data["totals"][header] = total
        return json.dumps(data, indent=2)
    if fmt in ("csv", "html"):
        frame = _frame(records)
        for header, values, _ in extra:
            frame[header] = values
        return frame.to_csv(index=False) if fmt == "csv" else frame.to_html(index=False)
    columns = (*COLUMNS, *(header for header, _, _ in extra))
    rows = [(*_row(r), *(human(values[i]) for _, values, _ in extra)) for i, r in enumerate(records)]
    totals = (*_total_row(report), *(human(total) for _, _, total in extra))
    if fmt == "markdown":
        header = "| " + " | ".join(columns) + " |"
        align = "|" + "|".join(["---"] * 3 + ["---:"] * (len(columns) - 3)) + "|"
        body = ["| " + " | ".join(r) + " |" for r in [*rows, totals]]
        return "\n".join([f"**{title}**", "", header, align, *body, "", *(f"- {s}" for s in summary_lines(report))])
    lines = _grid(columns, rows + [totals], right_from=3)
    lines.insert(-1, lines[1])
    return "\n".join([title, "", *lines, "", *summary_lines(report)])


def _frame(records: list[LayerRecord]):
    import pandas as pd

    frame = pd.DataFrame([asdict(r) for r in records])
    frame["output_shape"] = frame["output_shape"].map(lambda s: "x".join(map(str, s)))
    frame["inputs"] = frame["inputs"].map(lambda s: " ".join(s))
    return frame


def to_json(report: Report, records: list[LayerRecord] | None = None) -> dict:
    records = report.records if records is None else records
    layers = []
    for rec in records:
        row = asdict(rec)
        row["output_shape"] = list(rec.output_shape)
        row["inputs"] = list(rec.inputs)
        layers.append(row)
    return {
        "model": report.model,
        "description": report.graph.description,
        "input_shape": list(report.input_shape),
        "batch": report.batch,
        "dtype": report.dtype,
        "layers": layers,
        "totals": dict(report.totals),
    }


COMPARE_ROWS = (
    ("params", "params"),
    ("weights", "weights"),
    ("MACs", "macs"),
    ("other ops", "other"),
    ("FLOPs (2xMACs+other)", "flops"),
    ("activations", "activations"),
    ("activation bytes", "activation_bytes"),
    ("peak live bytes", "peak_activation_bytes"),
    ("training bytes", "training_bytes"),
    ("layers", "layers"),
)


def compare_table(reports: list[Report], fmt: str = "text") -> str:
    """Totals side by side; each model after the first gets a ratio column against the first."""
    base = reports[0].totals
    if fmt == "json":
        return json.dumps(
            {
                "models": [r.model for r in reports],
                "totals": {r.model: dict(r.totals) for r in reports},
                "ratios": {
                    r.model: {key: (r.totals[key] / base[key] if base[key] else None) for _, key in COMPARE_ROWS}
                    for r in reports[1:]
                },
            },
            indent=2,
        )
    header = ["", *(r.model for r in reports[:1])]
    for r in reports[1:]:
        header += [r.model, f"/{reports[0].model}"]
    rows = []
    for title, key in COMPARE_ROWS:
        row = [title, f"{base[key]:,}"]
        for r in reports[1:]:
            value = r.totals[key]
            row += [f"{value:,}", f"{value / base[key]:.3f}x" if base[key] else "-"]
        rows.append(row)
    if fmt == "csv":
        return "\n".join(",".join(f'"{c}"' for c in r) for r in [header, *rows]) + "\n"
    if fmt == "markdown":
        return "\n".join(
            ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
            + ["| " + " | ".join(r) + " |" for r in rows]
        )
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
        import csv
        import io

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
        import html

        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
        )
        return f'<table class="designs">\n<thead><tr>{cells}</tr></thead>\n<tbody>{body}</tbody>\n</table>'
    notes = [f"  {b.model} -> {a.model}: {title} [{source}]" for title, source, b, a in pairs]
    return "\n".join(_grid(header, rows, right_from=2) + ["", "ratio = alternative / baseline", *notes])


GROUP_COLUMNS = ("group", "layers", "MACs", "MACs %", "params", "params %", "activations", "activations %")


def group_table(report: Report, rows, by: str, fmt: str = "text") -> str:
    """The rows of archcost.grouping.group as a table: values and percentage shares."""
    title = f"{report.model}: MACs, params and activations by {by}"
    if fmt == "json":
        return json.dumps({"model": report.model, "by": by, "groups": [asdict(r) for r in rows]}, indent=2)
    if fmt in ("csv", "html"):
        import pandas as pd

        frame = pd.DataFrame([asdict(r) for r in rows])
        return frame.to_csv(index=False) if fmt == "csv" else frame.to_html(index=False)
    body = [
        (r.group, str(r.layers), human(r.macs), f"{100 * r.macs_share:.2f}%", f"{r.params:,}",
         f"{100 * r.params_share:.2f}%", human(r.activations), f"{100 * r.activations_share:.2f}%")
        for r in rows
    ]
    if fmt == "markdown":
        header = "| " + " | ".join(GROUP_COLUMNS) + " |"
        align = "|---|" + "|".join(["---:"] * (len(GROUP_COLUMNS) - 1)) + "|"
        return "\n".join([f"**{title}**", "", header, align, *("| " + " | ".join(r) + " |" for r in body)])
    return "\n".join([title, "", *_grid(GROUP_COLUMNS, body, right_from=1)])


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
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["convention", "unit", "total", "ratio", "ratio_to", "includes", "source"])
        for r in rows:
            writer.writerow([r["name"], r["unit"], r["total"], r["ratio"], r["base"], r["includes"], r["source"]])
        return out.getvalue()
    shape = "x".join(str(d) for d in report.input_shape)
    title = f"{report.model} | input {shape}, batch {report.batch}, {report.dtype}"
    note = "ratio: to archcost's MACs, or ('act') to archcost's forward activation bytes"
    if fmt == "markdown":
        header = "| " + " | ".join(CONVENTION_COLUMNS) + " |"
        align = "|---|---|---:|---:|---:|---|"
        return "\n".join([f"**{title}**", "", header, align, *("| " + " | ".join(r) + " |" for r in table), "", note])
    grid = _grid(CONVENTION_COLUMNS[:-1], [r[:-1] for r in table], right_from=2)
    includes = [CONVENTION_COLUMNS[-1], "-" * max(len(r[-1]) for r in table), *(r[-1] for r in table)]
    return "\n".join([title, "", *(f"{line}  {text}" for line, text in zip(grid, includes)), "", note])
