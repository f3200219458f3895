"""Output formats of predictions: plain restored text, JSONL, and an HTML page; where they go."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;background:#fff}
h1{font-size:1.4em} h2{font-size:1.05em;margin-top:2em;border-bottom:1px solid #ddd}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}
.pair>div{white-space:pre-wrap;line-height:1.5;font-size:.95em}
.dup{background:#fdd;color:#900;text-decoration:line-through}
.sub{background:#ffe8a8}
.rep{background:#d9f2d9}
.fill{background:#dbe8ff;color:#123d8a;font-style:italic;border-bottom:1px dashed #123d8a}
.mark{background:#eee;color:#666}
.legend span{padding:0 .3em;margin-right:1em}
.meta{color:#666;font-size:.85em}
"""


def to_jsonl_line(rec) -> str:
    return json.dumps(rec.to_record(), ensure_ascii=False)


def marked_html(text: str, spans: list[dict]) -> str:
    """``text`` as escaped HTML with each span wrapped in a marked ``<span>``."""
    out, prev = [], 0
    for s in sorted(spans, key=lambda s: s["start"]):
        out.append(html.escape(text[prev:s["start"]]))
        frag = html.escape(text[s["start"]:s["end"]])
        tip = html.escape(f"{s['label']} p={s.get('score', 1.0):.2f}" + (f" -> {s['replacement']}" if s.get("replacement") else ""))
        cls = "dup" if s["label"] == "DUP" else "sub"
        out.append(f'<span class="{cls}" title="{tip}">{frag}</span>')
        if s.get("replacement"):
            out.append(f'<span class="rep">{html.escape(s["replacement"])}</span>')
        prev = s["end"]
    out.append(html.escape(text[prev:]))
    return "".join(out)


def restored_html(restored: str, spans: list[dict]) -> str:
    """The restored text as escaped HTML, with what restoration put in (``replacement`` at ``at``) marked:
    a pronoun, words filled into a gap (in their own style: they are the model's guess, not the article's),
    or the gap mark."""
    from .restore import replacement_kind

    out, prev = [], 0
    for s in sorted((s for s in spans if s.get("replacement") and "at" in s), key=lambda s: s["at"]):
        at, repl = s["at"], s["replacement"]
        if at < prev or restored[at:at + len(repl)] != repl:
            continue  # not where it was put (never expected): leave the text unmarked
        cls = {"pronoun": "rep", "mark": "mark", "fill": "fill"}[replacement_kind(s)]
        tip = "" if cls != "fill" else f' title="filled gap, p={s["gap"]["score"]:.2f}"'
        out.append(html.escape(restored[prev:at]))
        out.append(f'<span class="{cls}"{tip}>{html.escape(repl)}</span>')
        prev = at + len(repl)
    out.append(html.escape(restored[prev:]))
    return "".join(out)


def to_html(records, title: str = "corefix: restored articles") -> str:
    """One self-contained page: each article with its marked spans beside the restored text."""
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<p class="legend"><span class="dup">removed copy (DUP)</span>'
        '<span class="sub">substituted mention (SUB)</span><span class="rep">pronoun put back</span>'
        '<span class="fill">words filled into a gap (a guess)</span><span class="mark">[…] words missing</span></p>',
    ]
    for rec in records:
        n_dup = sum(s["label"] == "DUP" for s in rec.spans)
        n_sub = len(rec.spans) - n_dup
        parts.append(f"<h2>{html.escape(rec.id)}</h2>")
        parts.append(f'<p class="meta">{n_dup} copies removed, {n_sub} substitutions replaced</p>')
        parts.append('<div class="pair"><div><b>damaged input</b>\n' + marked_html(rec.text, rec.spans)
                     + "</div><div><b>restored</b>\n" + restored_html(rec.restored, rec.spans) + "</div></div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


FORMATS = ("text", "jsonl", "html")
EXTENSIONS = {"text": "txt", "jsonl": "jsonl", "html": "html"}


def render(fmt: str, results) -> str:
    """Restorations in one output format: the restored text (several: each under a ``==> id <==`` line),
    JSONL lines, or one HTML page."""
    if fmt == "jsonl":
        return "".join(to_jsonl_line(r) + "\n" for r in results)
    if fmt == "html":
        return to_html(results)
    if len(results) == 1:
        return results[0].restored
    return "".join(f"==> {r.id} <==\n{r.restored}\n\n" for r in results)


def safe_name(art_id: str) -> str:
    """An article id as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", art_id).strip("._") or "article"


def output_targets(output: str | None, ids: list[str], fmt: str) -> tuple[list[Path], bool]:
    """Where the output goes, and whether one file per article: files in a folder (an existing folder, or
    a path ending in a slash), one file, or none (standard output)."""
    if not output:
        return [], False
    out = Path(output)
    if out.is_dir() or output.endswith(("/", "\\")):
        return [out / f"{safe_name(i)}.{EXTENSIONS[fmt]}" for i in ids], True
    return [out], False


def write_outputs(results, targets: list[Path], fmt: str, per_article: bool) -> None:
    """Write the rendered results to ``targets`` (:func:`output_targets`), or to standard output."""
    if per_article:
        targets[0].parent.mkdir(parents=True, exist_ok=True)
        for rec, t in zip(results, targets):
            t.write_text(render(fmt, [rec]), encoding="utf-8", newline="")
    elif targets:
        targets[0].parent.mkdir(parents=True, exist_ok=True)
        targets[0].write_text(render(fmt, results), encoding="utf-8", newline="")
    else:
        sys.stdout.write(render(fmt, results))
        sys.stdout.flush()
