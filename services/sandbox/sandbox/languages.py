"""File extension -> (MIME type, language) the way gist file listings report them."""

from __future__ import annotations

from pathlib import PurePosixPath

# GitHub derives both from the filename (linguist); this covers what demos and tests use.
_BY_EXTENSION: dict[str, tuple[str, str]] = {
    ".py": ("application/x-python", "Python"),
    ".rb": ("application/x-ruby", "Ruby"),
    ".js": ("application/javascript", "JavaScript"),
    ".ts": ("video/MP2T", "TypeScript"),  # linguist really maps .ts to this MIME type
    ".go": ("text/x-go", "Go"),
    ".rs": ("text/rust", "Rust"),
    ".java": ("text/x-java", "Java"),
    ".c": ("text/x-c", "C"),
    ".h": ("text/x-c", "C"),
    ".cpp": ("text/x-c++src", "C++"),
    ".cs": ("text/x-csharp", "C#"),
    ".php": ("application/x-php", "PHP"),
    ".sh": ("application/x-sh", "Shell"),
    ".sql": ("application/sql", "SQL"),
    ".md": ("text/markdown", "Markdown"),
    ".txt": ("text/plain", "Text"),
    ".json": ("application/json", "JSON"),
    ".yml": ("application/x-yaml", "YAML"),
    ".yaml": ("application/x-yaml", "YAML"),
    ".toml": ("application/toml", "TOML"),
    ".html": ("text/html", "HTML"),
    ".css": ("text/css", "CSS"),
}

# GitHub sends `"language": null` for unknown types, but the spec's base-gist declares
# `language` a non-nullable string; the spec wins, so unknown files read as plain text.
_FALLBACK = ("text/plain", "Text")


def file_type(filename: str) -> tuple[str, str]:
    return _BY_EXTENSION.get(PurePosixPath(filename).suffix.lower(), _FALLBACK)
