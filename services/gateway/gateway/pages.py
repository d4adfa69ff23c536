"""Server-rendered HTML. Everything user-controlled goes through `escape`: a gist
description is its owner's text, a login is whatever the client sent."""

from __future__ import annotations

from html import escape

from gistsync.contracts import UnseenGist

STYLE = """
body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;
color:#1f2328;line-height:1.5}
h1{font-size:1.4rem}ul{padding-left:1.2rem}li{margin:.6rem 0}
.meta{color:#59636e;font-size:.9rem}
"""


def page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def message(title: str, text: str) -> str:
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")


def gist_item(gist: UnseenGist) -> str:
    title = escape(gist.title)
    link = f'<a href="{escape(gist.html_url)}">{title}</a>' if gist.html_url else title
    files = ", ".join(
        escape(f.filename + (f" ({f.language})" if f.language else "")) for f in gist.files
    )
    created = gist.created_at.date().isoformat() if gist.created_at else ""
    meta = " · ".join(part for part in (files, created) if part)
    return f'<li>{link}<div class="meta">{meta}</div></li>'


def unseen_gists(login: str, gists: tuple[UnseenGist, ...]) -> str:
    who = escape(login)
    if not gists:
        return page(f"{login}: no new gists", f"<h1>No new gists for {who}</h1>")
    items = "".join(gist_item(g) for g in gists)
    count = len(gists)
    heading = f"{count} new gist{'s' if count != 1 else ''} for {who}"
    return page(f"{login}: new gists", f"<h1>{heading}</h1><ul>{items}</ul>")
