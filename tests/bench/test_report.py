"""The benchmark table: each figure's cells under their own column, the predecessor's
reference beside the median, and the notes around the table kept when it is rewritten."""

from __future__ import annotations

from pathlib import Path

from bench.figures import Figure, exactly
from bench.report import BEGIN, COLUMNS, END, table, write


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_a_figure_fills_each_column_with_its_own_cell() -> None:
    figure = Figure(
        "Cost",
        "Pipedrive requests per new gist",
        "",
        [1, 1, 1],
        "3 gists",
        exactly(1),
        note="seen",
        predecessor="12 (a whole cycle)",
    )
    header, _, section, line = table([figure]).splitlines()
    assert cells(header) == list(COLUMNS)
    assert cells(section)[0] == "**Cost**"
    row = dict(zip(COLUMNS, cells(line), strict=True))
    assert row["Median"] == "1"
    assert row["Predecessor"] == "12 (a whole cycle)"
    assert row["Spread"] == "1-1"
    assert (row["Target"], row["Met"], row["Note"]) == ("1", "yes", "seen")


def test_rewriting_keeps_what_is_written_around_the_table(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Benchmarks\n\nintro\n\n{BEGIN}\nold\n{END}\n\n## Notes\nkept\n")
    write(path, "Measured now.", [Figure("Cost", "x", "s", [2.0])])
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n\n")
    assert text.endswith("\n\n## Notes\nkept\n")
    assert "old" not in text
    assert "| x | 2 s |  | — |" in text
