"""The report as a list of blocks, rendered twice: index.md and index.html.

Figures build blocks (headings, paragraphs, notes, figures, tables); this module turns them
into Markdown and into one HTML page with inline CSS and no script, so the page opens offline
from the report folder. Inline markup in text and cells: **bold** and `code`.
"""
import dataclasses
import html
import re


@dataclasses.dataclass
class Heading:
    level: int
    text: str


@dataclasses.dataclass
class Para:
    text: str


@dataclasses.dataclass
class Note:
    """Missing data or a caveat, said in words (a gap is never drawn as a zero)."""
    text: str


@dataclasses.dataclass
class Bullets:
    items: list


@dataclasses.dataclass
class Figure:
    """stem.png and stem.svg in the report folder."""
    stem: str
    alt: str
    caption: str = ""


@dataclasses.dataclass
class Table:
    header: list
    rows: list


# ---- Markdown ------------------------------------------------------------------------------

def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks):
    """The blocks as GitHub-flavoured Markdown."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Note):
            out += ["> " + b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Figure):
            out += [f"![{b.alt}]({b.stem}.png)", ""]
            out += [(b.caption + " " if b.caption else "") + f"([SVG]({b.stem}.svg))", ""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
    return "\n".join(out) + "\n"


# ---- HTML ----------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1400px; padding: 1em 2em; color: #1b1b1b; background: #fff; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
nav ul { columns: 2; font-size: 90%; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 85%; color: #444; }
table { border-collapse: collapse; font-size: 80%; margin: .5em 0 1.5em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
code { font-size: 90%; background: #f4f4f4; padding: 0 2px; }
blockquote.note { border-left: 4px solid #d9a400; background: #fff8e0; margin: .5em 0; padding: .3em .8em; }
"""


def _inline(text):
    """Escapes text, then turns **x** into <strong> and `x` into <code>."""
    s = html.escape(str(text), quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)


def _anchor(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def to_html(blocks, title):
    """One self-contained page: inline CSS, relative image links, no script."""
    toc = [f'<li><a href="#{_anchor(b.text)}">{_inline(b.text)}</a></li>'
           for b in blocks if isinstance(b, Heading) and b.level == 2]
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f'<h{b.level} id="{_anchor(b.text)}">{_inline(b.text)}</h{b.level}>')
            if b.level == 1 and toc:
                body.append("<nav><ul>" + "".join(toc) + "</ul></nav>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Note):
            body.append(f'<blockquote class="note">{_inline(b.text)}</blockquote>')
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Figure):
            alt = html.escape(b.alt)
            cap = (_inline(b.caption) + " " if b.caption else "") + f'<a href="{b.stem}.svg">SVG</a>'
            body.append(f'<figure><a href="{b.stem}.png"><img src="{b.stem}.png" alt="{alt}"></a>'
                        f"<figcaption>{cap}</figcaption></figure>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
