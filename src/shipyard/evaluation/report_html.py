"""Render the machine-readable evaluation report as one self-contained HTML page.

No network, scripts or external assets: inline CSS and inline SVG only, so the file can be
archived, mailed and printed. Every string from the report is escaped (inputs are user data),
and missing optional parts simply leave their section out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shipyard.evaluation.charts_svg import (
    as_float,
    confusion_svg,
    coverage_svg,
    esc,
    fmt,
    mapping_of,
    pct,
    reliability_svg,
    rows_of,
)

DASH = '<span class="muted">—</span>'
MAX_CASES = 200
MAX_PAIRS = 25
MAX_INPUT_CHARS = 200
LOWER_IS_BETTER = {"ece", "mce", "brier", "log_loss", "loss", "error_rate"}
OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "=", "!=": "≠"}
OOS_FIELDS = (
    ("in_scope_accuracy", "In-scope accuracy"),
    ("oos_recall", "Out-of-scope recall"),
    ("oos_precision", "Out-of-scope precision"),
    ("oos_f1", "Out-of-scope F1"),
)

CSS = """
:root{--ink:#1f2933;--muted:#6b7785;--line:#e3e7ec;--pass:#1e7a46;--fail:#b42318;--bg:#f3f5f7}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:24px}
header.top,section{background:#fff;border:1px solid var(--line);border-radius:10px}
header.top{padding:20px 24px;display:flex;justify-content:space-between;gap:24px;
align-items:flex-start}
section{padding:18px 24px;margin-top:16px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:16px;margin:0 0 12px}
.sub{color:var(--muted);margin:0 0 12px}
.badge{font-weight:700;font-size:20px;letter-spacing:.06em;padding:8px 18px;border-radius:8px;
color:#fff;background:#6b7785;white-space:nowrap}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}
.verdict{text-align:right;min-width:170px}
.verdict p{margin:8px 0 0;color:var(--muted);font-size:12.5px}
dl.meta{display:grid;grid-template-columns:max-content auto max-content auto;gap:3px 14px;
margin:0;font-size:13px}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0}
nav{margin-top:12px;font-size:12.5px}nav a{color:#1f5fa8;text-decoration:none;margin-right:14px;
white-space:nowrap;display:inline-block}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:11.5px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em;
font-weight:600;background:#f8f9fb}
.num{text-align:right;white-space:nowrap}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600}
.pill.pass{background:#e3f3e8;color:var(--pass)}.pill.fail{background:#fde8e6;color:var(--fail)}
tr.failed td{background:#fff7f6}
.up{color:var(--pass)}.down{color:var(--fail)}.flat,.muted{color:var(--muted)}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
figure{margin:0}figcaption,.note{color:var(--muted);font-size:12.5px;margin-top:6px}
svg{max-width:100%;height:auto;display:block}
.scroll{overflow-x:auto}
.bar{display:inline-block;height:7px;border-radius:4px;vertical-align:middle;margin-right:8px;
background:#2f8f5b}.bar.mid{background:#d9822b}.bar.low{background:#c0392b}
.track{display:inline-block;width:80px;background:#edf0f3;border-radius:4px;line-height:0;
vertical-align:middle;margin-right:8px}.track .bar{margin:0}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px}
.tile{border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.tile span{color:var(--muted);font-size:12.5px}.tile b{display:block;font-size:22px}
td.text{word-break:break-word;max-width:560px}
footer{color:var(--muted);font-size:12px;text-align:center;margin:18px 0 6px}
@media print{body{background:#fff;font-size:11px}main{max-width:none;padding:0}
header.top,section{border:none;border-radius:0;padding:8px 0}nav{display:none}
section.chart{break-inside:avoid}tr{break-inside:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def _short(digest: object, length: int = 12) -> str:
    if not isinstance(digest, str) or not digest:
        return DASH
    return f'<span class="mono" title="{esc(digest)}">{esc(digest[:length])}</span>'


def _date(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return esc(value)
    offset = moment.utcoffset()
    zone = "" if offset is None else " UTC" if not offset else moment.strftime(" %z")
    return esc(moment.strftime("%Y-%m-%d %H:%M") + zone)


def _pill(passed: object) -> str:
    if passed is True:
        return '<span class="pill pass">pass</span>'
    if passed is False:
        return '<span class="pill fail">FAIL</span>'
    return DASH


def _table(head: Sequence[str], rows: Sequence[str], numeric: Sequence[int] = ()) -> str:
    cells = "".join(
        f'<th class="num">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
        for i, h in enumerate(head)
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(anchor: str, title: str, body: str, extra: str = "") -> str:
    cls = f' class="{extra}"' if extra else ""
    return f'<section id="{anchor}"{cls}><h2>{esc(title)}</h2>{body}</section>'


def _header(report: Mapping[str, Any], sections: Sequence[tuple[str, str]]) -> str:
    passed = report.get("passed")
    verdict = (
        ("pass", "PASS")
        if passed is True
        else ("fail", "FAIL")
        if passed is False
        else ("", "NO VERDICT")
    )
    gates = rows_of(report.get("gates")) + rows_of(report.get("regression"))
    failed = [g for g in gates if g.get("passed") is False]
    summary = f"{len(gates) - len(failed)} of {len(gates)} checks passed" if gates else "No gates"
    if failed:
        summary += "<br>Failed: " + ", ".join(esc(g.get("metric")) for g in failed)
    dataset = mapping_of(report.get("dataset"))
    previous = mapping_of(report.get("previous"))
    duration = as_float(report.get("duration_seconds"))
    speed = as_float(report.get("cases_per_second"))
    path = dataset.get("path")
    candidates = [
        ("Kind", report.get("kind"), esc(report.get("kind"))),
        ("Artifact", report.get("artifact"), _short(report.get("artifact"))),
        ("Dataset", path, f'<span class="mono">{esc(path)}</span>'),
        ("Rows", as_float(dataset.get("rows")), fmt(dataset.get("rows"))),
        ("Dataset sha256", dataset.get("sha256"), _short(dataset.get("sha256"))),
        ("Evaluated", report.get("created_at"), _date(report.get("created_at"))),
        ("Duration", duration, f"{duration or 0:.1f} s"),
        ("Throughput", speed, f"{speed or 0:,.1f} cases/s"),
        (
            "Compared with",
            previous,
            f"v{esc(previous.get('version', '?'))} {_short(previous.get('artifact'))}",
        ),
    ]
    meta = [(label, shown) for label, raw, shown in candidates if raw not in (None, "", {})]
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in meta)
    links = "".join(f'<a href="#{anchor}">{esc(title)}</a>' for anchor, title in sections)
    links = f"<nav>{links}</nav>" if len(sections) > 1 else ""
    return (
        f'<header class="top"><div><h1>{esc(report.get("task") or "Evaluation")}</h1>'
        f'<p class="sub">Evaluation report · version {esc(report.get("version", "—"))}</p>'
        f'<dl class="meta">{items}</dl>{links}</div>'
        f'<div class="verdict"><span class="badge {verdict[0]}">{verdict[1]}</span>'
        f"<p>{summary}</p></div></header>"
    )


def _lower_is_better(name: str, gates: Sequence[Mapping[str, Any]]) -> bool:
    ops = {g.get("op") for g in gates}
    return bool(ops & {"<=", "<"}) or name.lower() in LOWER_IS_BETTER


def _diff(name: str, value: object, before: object, gates: Sequence[Mapping[str, Any]]) -> str:
    now, then = as_float(value), as_float(before)
    if now is None or then is None:
        return DASH
    delta = now - then
    if abs(delta) < 5e-4:
        return '<span class="flat">±0.000</span>'
    better = (delta < 0) == _lower_is_better(name, gates)
    return f'<span class="{"up" if better else "down"}">{delta:+.3f}</span>'


def _metrics(report: Mapping[str, Any]) -> str:
    metrics = mapping_of(report.get("metrics"))
    before = mapping_of(mapping_of(report.get("previous")).get("metrics"))
    by_metric: dict[str, list[Mapping[str, Any]]] = {}
    for gate in rows_of(report.get("gates")):
        by_metric.setdefault(str(gate.get("metric")), []).append(gate)
    names = [str(name) for name in metrics] + [m for m in by_metric if m not in metrics]
    rows = []
    for name in names:
        gates = by_metric.get(name, [])
        value = metrics.get(name, gates[0].get("value") if gates else None)
        rule = ", ".join(
            f"{OPS.get(str(g.get('op')), esc(g.get('op')))} {fmt(g.get('threshold'))}"
            for g in gates
        )
        verdict = None if not gates else all(g.get("passed") is True for g in gates)
        rows.append(
            f"<tr{' class=failed' if verdict is False else ''}><td>{esc(name)}</td>"
            f'<td class="num"><b>{fmt(value)}</b></td><td class="num">{rule or DASH}</td>'
            + (
                f'<td class="num">{fmt(before.get(name))}</td>'
                f'<td class="num">{_diff(name, value, before.get(name), gates)}</td>'
                if before
                else ""
            )
            + f"<td>{_pill(verdict)}</td></tr>"
        )
    if before:
        return _table(
            ("Metric", "Value", "Gate", "Previous", "Change", "Status"), rows, (1, 2, 3, 4)
        )
    return _table(("Metric", "Value", "Gate", "Status"), rows, numeric=(1, 2))


def _regression(report: Mapping[str, Any]) -> str:
    rows = [
        f"<tr{' class=failed' if r.get('passed') is False else ''}><td>{esc(r.get('metric'))}</td>"
        f'<td class="num">{fmt(r.get("previous"))}</td><td class="num">{fmt(r.get("value"))}</td>'
        f'<td class="num">{fmt(r.get("drop"))}</td><td class="num">{fmt(r.get("max_drop"))}</td>'
        f"<td>{_pill(r.get('passed'))}</td></tr>"
        for r in rows_of(report.get("regression"))
    ]
    head = ("Metric", "Previous", "Current", "Drop", "Max drop", "Status")
    return _table(head, rows, numeric=(1, 2, 3, 4)) if rows else ""


def _out_of_scope(details: Mapping[str, Any]) -> str:
    oos = mapping_of(details.get("out_of_scope"))
    if not oos:
        return ""
    tiles = [
        f"<div class=tile><span>{esc(label)}</span><b>{pct(oos.get(key))}</b></div>"
        for key, label in OOS_FIELDS
        if key in oos
    ]
    counts = f"{fmt(oos.get('in_scope'))} in-scope and {fmt(oos.get('oos'))} out-of-scope cases."
    return f'<div class="tiles">{"".join(tiles)}</div><p class="note">{counts}</p>'


def _charts(report: Mapping[str, Any], details: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    labels = [str(x) for x in details.get("labels") or [] if x is not None]
    svg, note = confusion_svg(labels, details.get("confusion"))
    if svg:
        body = f'<div class="scroll">{svg}</div><p class="note">{esc(note)}</p>'
        found.append(("confusion", "Confusion matrix", body))
    figures = []
    reliability = reliability_svg(rows_of(details.get("reliability")))
    if reliability:
        ece = as_float(mapping_of(report.get("metrics")).get("ece"))
        caption = "Bars: accuracy per confidence bin; red ticks: mean confidence in the bin; "
        caption += "dashed: perfect calibration. Grey: cases per bin."
        caption += f" ECE {ece:.3f}." if ece is not None else ""
        figures.append(f"<figure>{reliability}<figcaption>{esc(caption)}</figcaption></figure>")
    threshold = as_float(details.get("review_threshold"))
    curve, caption = coverage_svg(rows_of(details.get("coverage_curve")), threshold)
    if curve:
        caption = caption or "Accuracy on the cases answered automatically, by coverage."
        figures.append(f"<figure>{curve}<figcaption>{esc(caption)}</figcaption></figure>")
    if figures:
        body = f'<div class="grid2">{"".join(figures)}</div>'
        found.append(("calibration", "Calibration and coverage", body))
    return found


def _pairs(details: Mapping[str, Any]) -> str:
    support = mapping_of(details.get("per_class"))
    rows = []
    for pair in rows_of(details.get("confused_pairs"))[:MAX_PAIRS]:
        total = as_float(mapping_of(support.get(str(pair.get("expected")))).get("support"))
        count = as_float(pair.get("count"))
        share = pct(count / total) if count is not None and total else "—"
        rows.append(
            f"<tr><td>{esc(pair.get('expected'))}</td><td>{esc(pair.get('predicted'))}</td>"
            f'<td class="num">{fmt(pair.get("count"))}</td><td class="num">{share}</td></tr>'
        )
    head = ("Expected", "Predicted instead", "Cases", "Share of expected class")
    return _table(head, rows, numeric=(2, 3)) if rows else ""


def _per_class(details: Mapping[str, Any]) -> str:
    classes = mapping_of(details.get("per_class"))

    def key(item: tuple[str, Any]) -> tuple[bool, float, str]:
        f1 = as_float(mapping_of(item[1]).get("f1"))
        return (f1 is None, f1 if f1 is not None else math.inf, item[0])

    rows = []
    for name, raw in sorted(((str(k), v) for k, v in classes.items()), key=key):
        stats = mapping_of(raw)
        f1 = as_float(stats.get("f1"))
        bar = ""
        if f1 is not None:
            level = "low" if f1 < 0.6 else "mid" if f1 < 0.8 else ""
            width = max(0.0, min(1.0, f1)) * 80
            bar = (
                f'<span class="track"><span class="bar {level}" '
                f'style="width:{width:.0f}px"></span></span>'
            )
        rows.append(
            f"<tr><td>{esc(name)}</td><td class=num>{fmt(stats.get('precision'))}</td>"
            f"<td class=num>{fmt(stats.get('recall'))}</td>"
            f"<td class=num>{bar}{fmt(f1)}</td>"
            f"<td class=num>{fmt(stats.get('support'))}</td></tr>"
        )
    head = ("Class", "Precision", "Recall", "F1", "Support")
    return _table(head, rows, numeric=(1, 2, 3, 4)) if rows else ""


def _text_of(value: object) -> str:
    if isinstance(value, Mapping):
        if "text" in value:
            return str(value["text"])
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return "" if value is None else str(value)


def _label_of(value: object) -> str:
    if isinstance(value, Mapping):
        if "label" in value:
            return str(value["label"])
        if "decision" in value:  # kind decide: the rationale and evidence are in the run
            return str(value["decision"])
        if "error" in value:
            return f"error: {value['error']}"
        return _text_of(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(str(item) for item in value)
    return "—" if value is None else str(value)


def _cases(report: Mapping[str, Any]) -> str:
    wrong = [case for case in rows_of(report.get("cases")) if case.get("correct") is False]
    if not wrong:
        return '<p class="note">No misclassified cases.</p>' if report.get("cases") else ""

    def confidence(case: Mapping[str, Any]) -> float | None:
        value = as_float(case.get("confidence"))
        return (
            value
            if value is not None
            else as_float(mapping_of(case.get("output")).get("confidence"))
        )

    wrong.sort(key=lambda case: -(confidence(case) or -1.0))
    rows = []
    for case in wrong[:MAX_CASES]:
        text = _text_of(case.get("input"))
        shown = text if len(text) <= MAX_INPUT_CHARS else text[: MAX_INPUT_CHARS - 1] + "…"
        rows.append(
            f"<tr><td class=num>{fmt(case.get('line'))}</td><td class=text>{esc(shown)}</td>"
            f"<td>{esc(_label_of(case.get('expected')))}</td>"
            f"<td>{esc(_label_of(case.get('output')))}</td>"
            f"<td class=num>{fmt(confidence(case))}</td></tr>"
        )
    note = f"{len(wrong):,} misclassified, most confident first."
    if len(wrong) > MAX_CASES:
        note += f" Showing the first {MAX_CASES}; {len(wrong) - MAX_CASES:,} omitted."
    head = ("Line", "Input", "Expected", "Predicted", "Confidence")
    return f'<p class="note">{esc(note)}</p>' + _table(head, rows, numeric=(0, 4))


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts) for a reviewer."""
    details = mapping_of(report.get("details"))
    parts: list[tuple[str, str, str, str]] = [
        ("metrics", "Metrics and gates", _metrics(report), ""),
        ("regression", "Regression against the previous version", _regression(report), ""),
        ("out-of-scope", "Out-of-scope detection", _out_of_scope(details), ""),
    ]
    parts += [(a, t, b, "chart") for a, t, b in _charts(report, details)]
    parts += [
        ("pairs", "Most confused class pairs", _pairs(details), ""),
        ("classes", "Per-class results (weakest first)", _per_class(details), ""),
        ("cases", "Misclassified cases", _cases(report), ""),
    ]
    shown = [part for part in parts if part[2]]
    body = "".join(_section(anchor, title, html, extra) for anchor, title, html, extra in shown)
    header = _header(report, [(anchor, title.split(" (")[0]) for anchor, title, _, _ in shown])
    title = f"{report.get('task') or 'Evaluation'} v{report.get('version', '?')} evaluation"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"{header}{body}<footer>Generated by Shipyard from the evaluation report.</footer>"
        "</main></body></html>"
    )
