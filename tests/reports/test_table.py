"""One schema for every format of `archcost table` (docs/reports.md, "The per-layer table"):
the same rows, names and totals in text, markdown, csv, json and html; the RF column; compare's
and --by's html and csv. Every format is parsed the way a reader would (csv, json, html.parser,
lines), and compared with the analysis's records and totals."""

import csv
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from html.parser import HTMLParser
from pathlib import Path

import pytest

from archcost import cli, zoo
from archcost.analysis import LayerRecord, analyze
from archcost.errors import ArchcostError
from archcost.grouping import group
from archcost.report.table import compare_table, group_table, human, layer_table

ROOT = Path(__file__).resolve().parents[2]

# The documented schema (docs/reports.md): the human formats' columns, the machine formats' fields.
DISPLAY = ["layer", "type", "output", "memory", "weights", "params", "MACs", "RF"]
MACHINE = [f.name for f in fields(LayerRecord)] + ["output", "rf"]
ADDITIVE = ["activations", "activation_bytes", "weights", "biases", "params", "buffers", "macs", "other", "flops"]


def cli_out(capsys, *argv) -> str:
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out


# --- parsers, one per format ------------------------------------------------------------------


def parse_text(out: str):
    """(title, header, rows, total, notes) of the text table: columns cut at the dash runs."""
    lines = out.splitlines()
    title, blank, header_line, sep = lines[:4]
    assert blank == "" and set(sep) <= {"-", " "}
    spans = [m.span() for m in re.finditer(r"-+", sep)]

    def cells(line):
        return [line[a:b].strip() for a, b in spans]

    end = lines.index(sep, 4)
    rows = [cells(line) for line in lines[4:end]]
    total = cells(lines[end + 1])
    assert lines[end + 2] == ""
    return title, cells(header_line), rows, total, lines[end + 3:]


def parse_markdown(out: str):
    lines = out.splitlines()
    table = [line for line in lines if line.startswith("|")]

    def cells(line):
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    header, align, *body = table
    assert set(align) <= set("|-:")
    rows, total = body[:-1], body[-1]
    notes = [line[2:] for line in lines if line.startswith("- ")]
    return lines[0], cells(header), [cells(r) for r in rows], cells(total), notes


class TableParser(HTMLParser):
    """caption, thead/tbody/tfoot rows (cell text, unescaped) and the <li> notes after a table."""

    def __init__(self):
        super().__init__()
        self.sections = {"thead": [], "tbody": [], "tfoot": []}
        self.caption = None
        self.notes = []
        self.tables = 0
        self._section = None
        self._cell = None
        self._text = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables += 1
        elif tag in self.sections:
            self._section = tag
        elif tag == "tr":
            self.sections[self._section].append([])
        elif tag in ("td", "th", "caption", "li"):
            self._text = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.sections[self._section][-1].append("".join(self._text))
        elif tag == "caption":
            self.caption = "".join(self._text)
        elif tag == "li":
            self.notes.append("".join(self._text))
        elif tag in self.sections:
            self._section = None
        if tag in ("td", "th", "caption", "li"):
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def parse_html(out: str) -> TableParser:
    parser = TableParser()
    parser.feed(out)
    parser.close()
    assert parser.tables == 1
    return parser


def parse_csv(out: str):
    rows = list(csv.reader(io.StringIO(out)))
    return rows[0], rows[1:-1], rows[-1]


# --- the per-layer table ----------------------------------------------------------------------

CASES = [("vgg16", True), ("vgg16", False), ("resnet18", True), ("resnet18", False)]


@pytest.fixture(scope="module")
def reports():
    return {name: analyze(zoo.build(name)) for name in ("vgg16", "resnet18")}


@pytest.mark.parametrize("model, fold", CASES)
def test_every_format_has_the_same_rows_and_totals(capsys, reports, model, fold):
    report = reports[model]
    records = report.folded() if fold else report.records
    names = [r.name for r in records]
    flags = [] if fold else ["--all-layers"]
    t = report.totals

    title, header, rows, total, notes = parse_text(cli_out(capsys, "table", model, *flags))
    text = {"header": header, "rows": rows, "total": total, "title": title, "notes": notes}
    md = cli_out(capsys, "table", model, "--format", "markdown", *flags)
    md_title, header, rows, total, notes = parse_markdown(md)
    markdown = {"header": header, "rows": rows, "total": total, "title": md_title.strip("*"), "notes": notes}
    page = parse_html(cli_out(capsys, "table", model, "--format", "html", *flags))
    (html_header,) = page.sections["thead"]
    (html_total,) = page.sections["tfoot"]
    html = {"header": html_header, "rows": page.sections["tbody"], "total": html_total, "title": page.caption,
            "notes": page.notes}
    human_formats = {"text": text, "markdown": markdown, "html": html}

    for fmt, table in human_formats.items():
        assert table["header"] == DISPLAY, fmt
        assert [r[0] for r in table["rows"]] == names, fmt
        assert table["total"][0] == "TOTAL", fmt
        # exact columns against the analysis's totals; rounded ones as human() rounds them
        assert int(table["total"][DISPLAY.index("params")].replace(",", "")) == t["params"], fmt
        assert int(table["total"][DISPLAY.index("weights")].replace(",", "")) == t["weights"], fmt
        assert table["total"][DISPLAY.index("memory")] == human(t["activations"]), fmt
        assert table["total"][DISPLAY.index("MACs")] == human(t["macs"]), fmt
        assert table["title"].startswith(f"{model}: ") and table["title"] == text["title"], fmt
        assert table["notes"] == text["notes"] and len(table["notes"]) == 3, fmt
        assert f"{t['params']:,}" in table["notes"][0], fmt
    assert text["rows"] == markdown["rows"] == html["rows"]
    assert text["total"] == markdown["total"] == html["total"]

    csv_header, csv_rows, csv_total = parse_csv(cli_out(capsys, "table", model, "--format", "csv", *flags))
    assert csv_header == MACHINE
    assert [r[0] for r in csv_rows] == names
    assert csv_total[0] == "TOTAL"
    for key, cell in zip(csv_header, csv_total):
        if key in ADDITIVE:
            assert int(cell) == t[key], key
        elif key != "name":
            assert cell == "", key

    data = json.loads(cli_out(capsys, "table", model, "--format", "json", *flags))
    assert [row["name"] for row in data["layers"]] == names
    assert data["rows"] == len(data["layers"]) == len(records)
    assert data["folded"] is fold
    # totals.layers counts the graph's layers (the input excluded), whatever the rows listed
    assert data["totals"]["layers"] == sum(1 for r in report.records if r.op != "input")
    assert data["totals"] == t
    for row in data["layers"]:
        assert list(row) == MACHINE

    # row by row: the human cells, the CSV cells and the JSON fields say the same
    for rec, shown, row_csv, row_json in zip(records, text["rows"], csv_rows, data["layers"]):
        cells = dict(zip(csv_header, row_csv))
        assert shown[DISPLAY.index("output")] == cells["output"] == row_json["output"]
        assert shown[DISPLAY.index("RF")] == cells["rf"] == row_json["rf"] == f"{rec.rf_h}x{rec.rf_w}"
        assert int(shown[DISPLAY.index("params")].replace(",", "")) == int(cells["params"]) == row_json["params"]
        assert shown[DISPLAY.index("MACs")] == human(int(cells["macs"])) == human(row_json["macs"])
        assert cells["output_shape"] == "x".join(map(str, rec.output_shape))
        assert row_json["output_shape"] == list(rec.output_shape) and rec.output_shape[0] == report.batch


def test_machine_shapes_are_batch_first_and_output_is_the_lecture_text(capsys):
    data = json.loads(cli_out(capsys, "table", "vgg16", "--format", "json", "--batch", "2"))
    _, rows, _ = parse_csv(cli_out(capsys, "table", "vgg16", "--format", "csv", "--batch", "2"))
    conv = next(row for row in data["layers"] if row["name"] == "conv1_1")
    assert conv["output_shape"] == [2, 64, 224, 224] and conv["output"] == "224x224x64"
    cells = dict(zip(MACHINE, next(r for r in rows if r[0] == "conv1_1")))
    assert cells["output_shape"] == "2x64x224x224" and cells["output"] == "224x224x64"


def test_rf_column_shows_the_analysis_receptive_fields(capsys, reports):
    report = reports["vgg16"]
    _, header, rows, _, _ = parse_text(cli_out(capsys, "table", "vgg16"))
    rf = {row[0]: row[header.index("RF")] for row in rows}
    records = {r.name: r for r in report.folded()}
    assert rf == {name: f"{r.rf_h}x{r.rf_w}" for name, r in records.items()}
    last_conv = [r for r in report.folded() if r.op == "conv"][-1]
    assert last_conv.name == "conv5_3" and rf["conv5_3"] == f"{last_conv.rf_h}x{last_conv.rf_w}"
    # Literature: Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
    # Networks", Distill 2019, Table 1: VGG-16's feature output (pool5, the end of the conv
    # body) has a 212-pixel receptive field. conv5_3 before it has 196 (212 - 16, pool5's 2x2 at jump 16).
    assert rf["pool5"] == "212x212"
    assert rf["conv5_3"] == "196x196"


def test_convention_columns_appear_in_every_format_with_their_totals(capsys):
    argv = ["table", "alexnet_tv", "--convention", "ptflops", "--convention", "torchinfo"]
    headers = ["ptflops MACs", "torchinfo MACs"]
    data = json.loads(cli_out(capsys, *argv, "--format", "json"))
    for h in headers:
        assert data["totals"][h] == sum(row[h] for row in data["layers"])
    csv_header, csv_rows, csv_total = parse_csv(cli_out(capsys, *argv, "--format", "csv"))
    assert csv_header == MACHINE + headers
    for i, h in enumerate(headers, start=len(MACHINE)):
        assert [int(r[i]) for r in csv_rows] == [row[h] for row in data["layers"]]
        assert int(csv_total[i]) == data["totals"][h]
    _, text_header, text_rows, text_total, _ = parse_text(cli_out(capsys, *argv))
    _, md_header, md_rows, md_total, _ = parse_markdown(cli_out(capsys, *argv, "--format", "markdown"))
    page = parse_html(cli_out(capsys, *argv, "--format", "html"))
    assert text_header == md_header == page.sections["thead"][0] == DISPLAY + headers
    assert text_rows == md_rows == page.sections["tbody"]
    assert text_total == md_total == page.sections["tfoot"][0]
    for i, h in enumerate(headers, start=len(DISPLAY)):
        assert [r[i] for r in text_rows] == [human(row[h]) for row in data["layers"]]
        assert text_total[i] == human(data["totals"][h])


def test_html_escapes_and_is_not_a_dataframe_dump():
    graph = zoo.build("conv3x3")
    graph.name = 'a <b> & "c"'
    out = layer_table(analyze(graph), "html")
    assert "<b>" not in out and "&lt;b&gt;" in out and "dataframe" not in out
    page = parse_html(out)
    assert page.caption.startswith('a <b> & "c": ')


def test_bad_format_and_misaligned_extra_are_errors():
    report = analyze(zoo.build("conv3x3"))
    with pytest.raises(ArchcostError, match="format"):
        layer_table(report, "yaml")
    with pytest.raises(ArchcostError, match="extra column"):
        layer_table(report, "csv", extra=[("x", [1] * (len(report.folded()) + 1), 1)])


# --- compare and --by ---------------------------------------------------------------------------


def test_compare_html_has_the_text_rows(capsys):
    models = ["vgg16", "resnet18", "inception_bottleneck"]
    text = cli_out(capsys, "compare", *models).splitlines()
    page = parse_html(cli_out(capsys, "compare", *models, "--format", "html"))
    (header,) = page.sections["thead"]
    rows = page.sections["tbody"]
    assert header[0] == "" and [h for h in header if h in models] == models
    for model in models:
        assert model in page.caption
    # the same quantities, in the same order, as the text table
    assert [r[0] for r in rows] == [line.split("  ")[0] for line in text[2:]]
    params = next(r for r in rows if r[0] == "params")
    for model in models:
        value = analyze(zoo.build(model)).totals["params"]
        assert params[header.index(model)] == f"{value:,}"


def test_compare_csv_quotes_names_and_keeps_exact_values():
    a, b = zoo.build("conv5x5"), zoo.build("conv3x3_x2")
    a.name, b.name = 'five, "by" five', "two 3x3"
    ra, rb = analyze(a), analyze(b)
    header, *rows = list(csv.reader(io.StringIO(compare_table([ra, rb], "csv"))))
    assert header == ["quantity", "key", 'five, "by" five', "two 3x3", 'two 3x3/five, "by" five']
    by_key = {row[1]: row for row in rows}
    assert int(by_key["macs"][2]) == ra.totals["macs"] and int(by_key["macs"][3]) == rb.totals["macs"]
    assert float(by_key["macs"][4]) == pytest.approx(rb.totals["macs"] / ra.totals["macs"], abs=1e-6)


@pytest.mark.parametrize("by", ["op-type", "stage"])
def test_group_html_and_csv_have_headers_and_a_total(capsys, reports, by):
    report = reports["resnet18"]
    rows = group(report, by)
    page = parse_html(group_table(report, rows, by, "html"))
    assert page.sections["thead"][0][:3] == ["group", "layers", "MACs"]
    assert [r[0] for r in page.sections["tbody"]] == [r.group for r in rows]
    (total,) = page.sections["tfoot"]
    assert total[0] == "TOTAL" and total[4] == f"{report.totals['params']:,}"
    header, *body = list(csv.reader(io.StringIO(group_table(report, rows, by, "csv"))))
    assert header[0] == "group" and [r[0] for r in body[:-1]] == [r.group for r in rows]
    total = dict(zip(header, body[-1]))
    assert total["group"] == "TOTAL" and int(total["params"]) == report.totals["params"]
    assert int(total["macs"]) == report.totals["macs"] and int(total["layers"]) == len(report.folded())
    text = cli_out(capsys, "table", "resnet18", "--by", by).splitlines()
    assert text[-1].startswith("TOTAL") and f"{report.totals['params']:,}" in text[-1]


def test_table_formats_do_not_import_pandas():
    script = (
        "import contextlib, io, sys\n"
        "import archcost.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for fmt in ('text', 'markdown', 'csv', 'json', 'html'):\n"
        "        assert archcost.cli.main(['table', 'vgg16', '--format', fmt]) == 0\n"
        "        assert archcost.cli.main(['table', 'vgg16', '--by', 'stage', '--format', fmt]) == 0\n"
        "        assert archcost.cli.main(['compare', 'vgg16', 'resnet18', '--format', fmt]) == 0\n"
        "print('pandas' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
