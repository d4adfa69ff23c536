"""Server-rendered HTML. Everything user-controlled goes through `esc`: a gist description
or a file name is its owner's text, a login is whatever the client sent. Links to gists
are kept only when they are http(s), so a `javascript:` URL can never become a link.

The pages work without JavaScript (and the Content-Security-Policy forbids it): state
changes are forms that POST with a CSRF token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote, urlsplit

from gateway.security import CSRF_FIELD, Flash
from gistsync.contracts import GistView, PollStatus, TrackedUser

STYLESHEET = "/assets/gistsync.css"
STYLE = """\
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#fff;--panel:#f6f8fa;
--line:#d1d9e0;--accent:#0969da;--ok:#1a7f37;--ok-bg:#dafbe1;--err:#a40e26;--err-bg:#ffebe9}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;
--panel:#151b23;--line:#3d444d;--accent:#4493f8;--ok:#3fb950;--ok-bg:#12261e;--err:#f85149;
--err-bg:#25171c}}
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:50rem;
margin:0 auto;padding:0 1rem 3rem;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;
justify-content:space-between;padding:.9rem 0;margin-bottom:1.2rem;
border-bottom:1px solid var(--line)}
header nav{display:flex;gap:.5rem;align-items:center}
.brand{font-weight:700;font-size:1.1rem;color:var(--fg);text-decoration:none}
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:0}
form{margin:0}
input[type=text],input[type=password]{font:inherit;padding:.4rem .6rem;border:1px solid var(--line);
border-radius:6px;background:var(--bg);color:var(--fg);min-width:14rem}
button{font:inherit;white-space:nowrap;padding:.35rem .9rem;border:1px solid var(--line);
border-radius:6px;background:var(--panel);color:var(--fg);cursor:pointer}
button.primary{background:var(--ok);border-color:var(--ok);color:#fff}
button.small{padding:.1rem .6rem;font-size:.85rem}
button.danger{color:var(--err)}
.flash{padding:.6rem .9rem;border-radius:6px;margin-bottom:1rem}
.flash.ok{background:var(--ok-bg);color:var(--ok)}
.flash.error{background:var(--err-bg);color:var(--err)}
table{width:100%;border-collapse:collapse;margin-bottom:1.5rem}
th,td{text-align:left;padding:.5rem;border-bottom:1px solid var(--line)}
th{color:var(--muted);font-weight:600;font-size:.9rem}
.count{display:inline-block;min-width:1.8rem;text-align:center;padding:0 .5rem;
border-radius:1rem;background:var(--panel);border:1px solid var(--line)}
.count.new{background:var(--accent);border-color:var(--accent);color:#fff}
.add,.actions{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;
padding:1rem;background:var(--panel);border:1px solid var(--line);border-radius:8px}
.tabs{display:flex;gap:1rem;margin-bottom:1rem}
.tabs a[aria-current]{font-weight:700;color:var(--fg);text-decoration:none}
ul.gists{list-style:none;padding:0;margin:1rem 0}
li.gist{padding:.8rem 0;border-bottom:1px solid var(--line);display:flex;gap:1rem;
justify-content:space-between;align-items:flex-start}
.title{overflow-wrap:anywhere}
.meta,.hint,.empty{color:var(--muted);font-size:.9rem;margin:.2rem 0 0}
.files{margin:.3rem 0 0;padding:0;list-style:none;font-size:.9rem}
.files li{display:inline-block;margin-right:.8rem;overflow-wrap:anywhere}
code{font-size:.9em}
.lang{display:inline-block;font-size:.8rem;padding:0 .4rem;border-radius:4px;
border:1px solid var(--line);color:var(--muted)}
.seen{color:var(--muted);font-size:.85rem}
.danger-zone{margin-top:2rem}
dl.op dt{font-family:ui-monospace,monospace;margin-top:1rem}dl.op dd{margin-left:1rem}
.polling{margin:0 0 1rem;padding:.6rem 1rem;border:1px solid var(--line);border-radius:8px}
.polling dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.4rem 0 0}
.polling dt{color:var(--muted)}.polling dd{margin:0;overflow-wrap:anywhere}
.polling .failed{color:var(--err)}
"""


def esc(text: object) -> str:
    # Bytes a client sent that are not UTF-8 reach us as lone surrogates: shown as `?`.
    return escape(str(text).encode("utf-8", "replace").decode(), quote=True)


def safe_url(url: str | None) -> str | None:
    """`url` when it is an http(s) address, else None."""
    if not url:
        return None
    return url if urlsplit(url).scheme.lower() in ("http", "https") else None


def user_path(login: str, suffix: str = "") -> str:
    return f"/users/{quote(login, safe='')}{suffix}"


def when(moment: datetime | None, *, seconds: bool = False) -> str:
    if moment is None:
        return ""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    stamp = utc.isoformat().replace("+00:00", "Z")
    shown = f"{utc:%Y-%m-%d %H:%M:%S}" if seconds else f"{utc:%Y-%m-%d %H:%M}"
    return f'<time datetime="{esc(stamp)}">{shown} UTC</time>'


def duration(seconds: float) -> str:
    """`45 s`, `5 min`, `1 h 30 min`: how often, said the way a person would."""
    whole = round(seconds)
    if whole < 120:
        return f"{seconds:g} s" if whole < 10 else f"{whole} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


# --- the frame every interactive page shares -------------------------------------------


@dataclass(frozen=True)
class Frame:
    """What a page needs besides its content: the CSRF token its forms carry (and the cookie
    it is bound to), the message left by the previous form, and whether there is a session
    to end."""

    csrf: str
    csrf_cookie: str = ""
    flash: Flash | None = None
    signed_in: bool = False
    keyed: bool = False  # the gateway has an API key, so there is signing in
    here: str = "/"  # where "Check GitHub now" comes back to


def document(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f'<title>{esc(title)}</title><link rel=stylesheet href="{STYLESHEET}"></head>'
        f"<body>{body}</body></html>\n"
    )


def csrf_input(frame: Frame) -> str:
    return f'<input type=hidden name="{CSRF_FIELD}" value="{esc(frame.csrf)}">'


def post_form(frame: Frame, action: str, inner: str, css: str = "") -> str:
    attrs = f' class="{css}"' if css else ""
    return f'<form method=post action="{esc(action)}"{attrs}>{csrf_input(frame)}{inner}</form>'


def layout(title: str, content: str, frame: Frame | None) -> str:
    nav = ""
    flash = ""
    if frame is not None:
        back = f'<input type=hidden name=back value="{esc(frame.here)}">'
        nav = post_form(frame, "/sync", f"{back}<button>Check GitHub now</button>")
        if frame.signed_in:
            nav += post_form(frame, "/logout", "<button>Sign out</button>")
        elif frame.keyed:
            nav += f'<a href="/login?next={esc(quote(frame.here, safe="/"))}">Sign in</a>'
        if frame.flash is not None:
            role = "alert" if frame.flash.level == "error" else "status"
            level = "error" if frame.flash.level == "error" else "ok"
            flash = f'<p class="flash {level}" role={role}>{esc(frame.flash.text)}</p>'
    header = f'<header><a class=brand href="/">gistsync</a><nav>{nav}</nav></header>'
    return document(title, f"{header}<main>{flash}{content}</main>")


def count_badge(count: int) -> str:
    css = "count new" if count else "count"
    return f'<span class="{css}">{count}</span>'


def index(users: Iterable[TrackedUser], frame: Frame) -> str:
    rows = "".join(
        f'<tr><td><a href="{esc(user_path(u.login))}">{esc(u.login)}</a></td>'
        f"<td>{count_badge(u.unseen)}</td></tr>"
        for u in sorted(users, key=lambda u: u.login.casefold())
    )
    table = (
        f"<table><thead><tr><th>GitHub user</th><th>New gists</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if rows
        else "<p class=empty>No one is tracked yet: add a GitHub user below.</p>"
    )
    form = post_form(
        frame,
        "/users",
        "<label for=login>Track a GitHub user</label>"
        "<input type=text id=login name=login required maxlength=39 autocomplete=off "
        'spellcheck=false placeholder="octocat">'
        "<button class=primary>Track</button>",
        "add",
    )
    return layout("gistsync: tracked users", f"<h1>Tracked GitHub users</h1>{table}{form}", frame)


def gist_entry(gist: GistView, frame: Frame, login: str) -> str:
    title = esc(gist.title)
    url = safe_url(gist.html_url)
    link = f'<a href="{esc(url)}" rel="noopener noreferrer">{title}</a>' if url else title
    files = "".join(
        f"<li><code>{esc(f.filename)}</code>"
        + (f' <span class="lang">{esc(f.language)}</span>' if f.language else "")
        + "</li>"
        for f in gist.files
    )
    meta = when(gist.created_at)
    if gist.seen:
        action = '<span class="seen">seen</span>'
    else:
        hidden = f'<input type=hidden name=gist_id value="{esc(gist.id)}">'
        action = post_form(
            frame, user_path(login, "/seen"), f"{hidden}<button class=small>Mark seen</button>"
        )
    return (
        f'<li class="gist" id="gist-{esc(gist.id)}"><div><h2 class="title">{link}</h2>'
        f'<p class="meta">{meta}</p><ul class="files">{files}</ul></div>{action}</li>'
    )


def polling_panel(state: str, status: PollStatus | None, detail: str | None) -> str:
    """How the user's polling goes: what the poller said, or that it said nothing."""
    head = "<h2>Polling</h2>"
    if status is None:
        text = "Polling status unknown. " if state == "unknown" else ""
        body = f"<p class=hint>{esc(text)}{esc(detail or '')}</p>"
        return f'<section class=polling id=polling data-state="{esc(state)}">{head}{body}</section>'
    error = status.last_error
    failures = (
        f" ({status.failures} failed poll{'s' if status.failures != 1 else ''} in a row)"
        if status.failures
        else ""
    )
    rows = [
        ("Last poll", when(status.last_poll_at, seconds=True) or "not yet"),
        ("Last change seen", when(status.last_change_at, seconds=True) or "none yet"),
        (
            "Last error",
            f"<span class=failed>{when(error.at, seconds=True)}: {esc(error.text)}</span>"
            if error is not None
            else "none",
        ),
        ("Polled every", f"{esc(duration(status.interval_seconds))}{esc(failures)}"),
        ("Next poll", when(status.next_poll_at, seconds=True) or "running now"),
    ]
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return (
        f'<section class=polling id=polling data-state="{esc(state)}">{head}'
        f"<dl>{items}</dl></section>"
    )


def user_page(
    login: str, gists: tuple[GistView, ...], state: str, frame: Frame, polling: str = ""
) -> str:
    unseen = [g for g in gists if not g.seen]
    tabs = (
        '<nav class="tabs">'
        f'<a href="{esc(user_path(login))}"{" aria-current=page" if state == "unseen" else ""}>'
        "New</a>"
        f'<a href="{esc(user_path(login, "?state=all"))}"'
        f"{' aria-current=page' if state == 'all' else ''}>All</a></nav>"
    )
    if unseen:
        hidden = "".join(f'<input type=hidden name=gist_id value="{esc(g.id)}">' for g in unseen)
        label = f"Mark {'all ' if len(unseen) > 1 else ''}{len(unseen)} as seen"
        actions = post_form(
            frame, user_path(login, "/seen"), f"{hidden}<button class=primary>{label}</button>"
        )
    else:
        actions = ""
    if gists:
        items = "".join(gist_entry(g, frame, login) for g in gists)
        listing = f'<ul class="gists">{items}</ul>'
    elif state == "unseen":
        listing = "<p class=empty>No new gists. New ones appear here within a poll interval.</p>"
    else:
        listing = "<p class=empty>No gists found for this user yet.</p>"
    count = len(unseen)
    heading = f"{esc(login)} <small>{count_badge(count)} new</small>"
    untrack = post_form(
        frame,
        user_path(login, "/untrack"),
        f"<button class=danger>Stop tracking {esc(login)}</button>"
        "<p class=hint>Polling stops and the Pipedrive deal is marked lost; the person, the "
        "deal and its activities stay in Pipedrive.</p>",
        "danger-zone",
    )
    content = (
        f'<p><a href="/">&larr; All users</a></p><h1>{heading}</h1>{polling}{tabs}{actions}'
        f"{listing}{untrack}"
    )
    return layout(f"gistsync: {login}", content, frame)


def login_page(next_path: str, frame: Frame) -> str:
    form = post_form(
        frame,
        "/login",
        f'<input type=hidden name=next value="{esc(next_path)}">'
        "<label for=api_key>API key</label>"
        "<input type=password id=api_key name=api_key required autocomplete=current-password>"
        "<button class=primary>Sign in</button>",
        "add",
    )
    intro = "<p>This gateway is protected: sign in with its API key (GATEWAY_API_KEY).</p>"
    return layout("gistsync: sign in", f"<h1>Sign in</h1>{intro}{form}", frame)


def error_page(status: int, title: str, detail: str) -> str:
    content = (
        f"<h1>{esc(title)}</h1><p>{esc(detail)}</p>"
        f'<p class=hint>Status {status}. <a href="/">Back to the tracked users</a></p>'
    )
    return layout(f"gistsync: {title}", content, None)


# --- the predecessor's pages -----------------------------------------------------------


def message(title: str, text: str) -> str:
    return document(title, f"<h1>{esc(title)}</h1><p>{esc(text)}</p>")


def gist_item(gist: GistView) -> str:
    title = esc(gist.title)
    url = safe_url(gist.html_url)
    link = f'<a href="{esc(url)}">{title}</a>' if url else title
    files = ", ".join(
        esc(f.filename + (f" ({f.language})" if f.language else "")) for f in gist.files
    )
    created = gist.created_at.date().isoformat() if gist.created_at else ""
    meta = " · ".join(part for part in (files, created) if part)
    return f'<li>{link}<div class="meta">{meta}</div></li>'


def unseen_gists(login: str, gists: tuple[GistView, ...]) -> str:
    who = esc(login)
    if not gists:
        return document(f"{login}: no new gists", f"<h1>No new gists for {who}</h1>")
    items = "".join(gist_item(g) for g in gists)
    count = len(gists)
    heading = f"{count} new gist{'s' if count != 1 else ''} for {who}"
    return document(f"{login}: new gists", f"<h1>{heading}</h1><ul>{items}</ul>")
