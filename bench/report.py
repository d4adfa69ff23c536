"""The table: printed, and written into BENCHMARKS.md between two markers, so that the
notes around it (profiles, fixes, unmet targets) are kept."""

from __future__ import annotations

from pathlib import Path

from bench.figures import Figure

BEGIN = "<!-- bench:table:begin (written by `make bench`; edit outside the markers) -->"
END = "<!-- bench:table:end -->"
COLUMNS = (
    "Figure",
    "Median",
    "Predecessor",
    "Spread",
    "Basis",
    "vs baseline",
    "Target",
    "Met",
    "Note",
)


def table(figures: list[Figure]) -> str:
    """One Markdown table; sections in the order they first appear, each as a bold row."""
    sections: dict[str, list[Figure]] = {}
    for figure in figures:
        sections.setdefault(figure.section, []).append(figure)
    lines = [row(COLUMNS), row(("---",) * len(COLUMNS))]
    for section, rows in sections.items():
        lines.append(row((f"**{section}**",) + ("",) * (len(COLUMNS) - 1)))
        for f in rows:
            target = f.target.text if f.target else ""
            cells = (f.name, f.value, f.predecessor, f.spread, f.basis, f.ratio, target, f.met)
            lines.append(row((*cells, f.note)))
    return "\n".join(lines)


def row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def block(header: str, figures: list[Figure]) -> str:
    return f"{BEGIN}\n{header}\n\n{table(figures)}\n{END}"


def write(path: Path, header: str, figures: list[Figure]) -> None:
    """Replace the table between the markers, or start the file with it."""
    new = block(header, figures)
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + new + after
    else:
        text = f"# Benchmarks\n\n{new}\n{text}"
    path.write_text(text)
