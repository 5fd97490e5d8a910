"""The docs' generated pages, as MyST Markdown text.

Everything here turns numbers measured during the build (claim reports,
figures, the real-loss tables, the tutorial's pytest run, the benchmark
record) into Markdown; nothing here measures anything itself. Links between
pages use Sphinx's ``{doc}`` role with absolute document names, so the same
text works in a page and in a file that a page includes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from ._docplots import Figure
from ._realworld import OptaxRow, SklearnRow, TorchRow
from .claims import REGISTRY, ClaimReport, PropertyReport
from .verdict import HOLDS, Verdict

__all__ = ["Build", "claim_page", "claims_index", "summary", "real_losses", "peers", "peers_record", "escape"]

KIND_WORDS = {
    "universal": "universal: must hold on every generated case",
    "witnessed": "witnessed: fails in general; a counterexample is searched for and shrunk",
    "asymptotic": "asymptotic: an error term of a stated order, checked by its observed order",
}


@dataclass(frozen=True)
class Build:
    """What every page says about the build that made it."""

    date: str
    machine: str
    examples: int
    seed: str  # "derandomized" or "seed N"
    ids: tuple[str, ...]  # the claims this build verified


def escape(text: str) -> str:
    """Text safe inside a Markdown table cell or paragraph (no markup, no cell breaks)."""
    # Runs of whitespace become one space, but a leading or trailing one stays: the
    # pieces of a sentence around a link are escaped one by one.
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", re.sub(r"\s+", " ", str(text)))


def claim_link(cid: str, label: str | None = None) -> str:
    """A link to a claim's page (the ``claim`` role: plain text where this build has no such page)."""
    return f"{{claim}}`{label} <{cid}>`" if label else f"{{claim}}`{cid}`"


def linked(text: str) -> str:
    """Escaped prose with every claim id (A1, F2, ...) made a link to its page."""
    parts = re.split(r"\b([A-F][1-9])\b", text)
    return "".join(claim_link(p) if i % 2 and p in REGISTRY else escape(p) for i, p in enumerate(parts))


def _ratio(v: Verdict | None) -> str:
    if v is None:
        return "—"
    rel = "≤" if v.error <= v.tolerance else ">"
    # Code with no-break spaces: a number never breaks across lines at its exponent.
    return f"`{v.error:.1e}\u00a0{rel}\u00a0{v.tolerance:.1e}`"


def _property_row(p: PropertyReport) -> str:
    if p.mode == "holds":
        must, figure = "holds on every case", _ratio(p.worst)
    else:
        must, figure = "a witness exists", _ratio(p.verdict) if p.witness is not None else "—"
    outcome = "found" if p.mode == "witness" and p.outcome == HOLDS else p.outcome
    outcome = outcome if not p.note else f"{outcome}: {p.note}"
    return f"| {escape(p.name)} | {must} | {escape(outcome)} | {p.cases} | {p.undetermined} | {figure} |"


def _properties_table(report: ClaimReport) -> list[str]:
    return ["| property | what must happen | outcome | cases | undetermined | error vs bound |",
            "| --- | --- | --- | ---: | ---: | --- |",
            *(_property_row(p) for p in report.properties)]


def _wrapped_case(case: object, width: int = 96) -> str:
    """A shrunk case's repr, one field a line, so a page never scrolls sideways for it."""
    text = repr(case)
    if text.startswith("Case(") and text.endswith(")"):
        text = "Case(\n    " + ";\n    ".join(text[5:-1].split("; ")) + "\n)"
    lines = []
    for line in text.splitlines():
        while len(line) > width:
            cut = line.rfind(", ", 0, width) + 2 or width
            lines.append(line[:cut].rstrip())
            line = "        " + line[cut:]
        lines.append(line)
    return "\n".join(lines)


def _heading(p: PropertyReport) -> str:
    return "Witness" if p.mode == "witness" and p.outcome == HOLDS else "Counterexample"


def _witness_section(p: PropertyReport) -> list[str]:
    v = p.verdict
    return [f"### {_heading(p)}: {escape(p.name)}", "",
            f"{escape(v.message)}", "",
            "```text", v.numbers(), "```", "",
            "The smallest case Hypothesis shrank it to:", "",
            "```text", _wrapped_case(p.witness), "```", ""]


def _one_line(case: object) -> str:
    """A case's repr on one line, safe inside a table's code cell."""
    return " ".join(repr(case).split()).replace("|", "\\|")


def _witness_table(found: list[PropertyReport]) -> list[str]:
    """Many witnesses as one table, so the page stays short enough to scan."""
    def label(p: PropertyReport) -> str:  # under "Witnesses", only a counterexample needs saying so
        return escape(p.name) if _heading(p) == "Witness" else f"{_heading(p)}: {escape(p.name)}"

    rows = [f"| {label(p)} | {escape(p.verdict.message)} | {_ratio(p.verdict)} | "
            f"`{_one_line(p.witness)}` |" for p in found]
    return ["## Witnesses", "", "Each is the smallest case Hypothesis shrank the failure to.", "",
            "| property | what it shows | error vs tolerance | shrunk case |", "| --- | --- | --- | --- |",
            *rows, ""]


def _witnesses(report: ClaimReport) -> list[str]:
    found = [p for p in report.properties if p.verdict is not None]
    if len(found) > 2:
        return _witness_table(found)
    return [line for p in found for line in _witness_section(p)]


def _figure_section(fig: Figure) -> list[str]:
    return ["## Plot", "",
            f"```{{figure}} /_generated/figures/{fig.file}", f":alt: {fig.title}", ":width: 100%", "",
            f"{escape(fig.title)}. {escape(fig.caption)}", "```", ""]


def _outcome_line(report: ClaimReport, build: Build) -> str:
    if report.skipped:
        return f"**Not verified in this build**: {escape(report.skipped)}."
    verdict = {"holds": "verified", "fails": "NOT verified", "undetermined": "undetermined"}[report.outcome]
    return (f"**This build: {verdict}** ({report.outcome}) on {report.cases} generated cases, "
            f"{build.examples} per property ({build.seed}), in {report.seconds:.1f} s.")


def claim_page(report: ClaimReport, build: Build, figures: Sequence[Figure] = ()) -> str:
    """The page of one claim: what it says, and what this build measured."""
    c = report.claim
    lines = [f"# {c.id} · {escape(c.title)}", "",
             f"*{KIND_WORDS[c.kind]}.*", "",
             _outcome_line(report, build), "",
             f"**Statement.** {linked(c.statement)}", "",
             f"**Conditions.** {linked(c.conditions)}", "",
             f"**Proof idea.** {linked(c.proof)}", ""]
    if report.properties:
        lines += ["## Figures of this build", "", *_properties_table(report), "",
                  "Error and bound are those of the closest case to its bound (for a property that must "
                  "hold) or of the witness (where the law must fail, by far more than its tolerance).", ""]
    for fig in figures:
        lines += _figure_section(fig)
    lines += _witnesses(report)
    lines += [f"*Built {build.date} on {escape(build.machine)}.*", ""]
    return "\n".join(lines)


def _summary_row(report: ClaimReport, build: Build, figures: dict[str, Figure]) -> str:
    c = report.claim
    plot = "plot" if c.id in figures else ""
    outcome = "not run: " + report.skipped if report.skipped else report.outcome
    return (f"| {claim_link(c.id)} | {claim_link(c.id, c.title)} | {c.kind} | "
            f"{escape(outcome)} | {report.cases} | {plot} |")


def summary(reports: Sequence[ClaimReport], build: Build, figures: Iterable[Figure]) -> str:
    """The table of every claim this build checked, for the home and claims pages."""
    by_claim = {f.claim: f for f in figures}
    held = sum(r.holds for r in reports)
    return "\n".join([
        f"This build ({build.date}, {escape(build.machine)}) checked {len(reports)} claims on "
        f"{build.examples} generated cases per property ({build.seed}): **{held} of {len(reports)} hold**.",
        "",
        "| id | claim | kind | this build | cases | plot |",
        "| --- | --- | --- | --- | ---: | --- |",
        *(_summary_row(r, build, by_claim) for r in reports), ""])


def claims_index(reports: Sequence[ClaimReport], build: Build, figures: Iterable[Figure]) -> str:
    toctree = ["```{toctree}", ":hidden:", "", *(r.claim.id for r in reports), "```", ""]
    return "\n".join(["# The claims", "",
                      "Each claim is written once, in gradcheck's registry, and checked by property-based "
                      "testing: Hypothesis generates networks, parameters and batches, and every gradient "
                      "is held to finite differences as well as to the algebra. The pages below show what "
                      "this build measured.", "",
                      summary(reports, build, figures), *toctree])


# ------------------------------------------------------------------ real losses


TARGET_WORDS = {"class": "class indices", "real": "real values", "prob": "probabilities"}


def _targets(target: str, weights: str) -> str:
    return escape(TARGET_WORDS[target] + (f"; weights: {weights}" if weights else ""))


def _torch_table(rows: Sequence[TorchRow]) -> list[str]:
    return ["| loss (torch.nn) | targets | infer_reduction / check_reduction say | the summed loss is divided by |",
            "| --- | --- | --- | --- |",
            *(f"| `{r.code}` | {_targets(r.target, r.weights)} | {escape(r.says)} | {escape(r.divisor)} |"
              for r in rows)]


def _optax_table(rows: Sequence[OptaxRow] | None) -> list[str]:
    if rows is None:  # the build must not need JAX: say what is missing instead
        return ["optax is not installed where this site was built, so its table is skipped."]
    return ["optax returns one loss per example (or per output); the code below is the reduction its user "
            "writes, with `out` the model's output, `y` the targets and `w` the class weights above. The "
            "divisor is measured against the plain sum in the last column.", "",
            "| loss (optax), reduced as written | targets | infer_reduction / check_reduction say "
            "| divided by | the plain sum |",
            "| --- | --- | --- | --- | --- |",
            *(f"| `{r.code}` | {_targets(r.target, r.weights)} | {escape(r.says)} | {escape(r.divisor)} "
              f"| `{r.summed}` |" for r in rows)]


def real_losses(torch_rows: Sequence[TorchRow], optax_rows: Sequence[OptaxRow] | None,
                sklearn_rows: Sequence[SklearnRow], weights: str) -> str:
    """The tables of the real-losses page; ``weights`` shows the class weights the rows used,
    and ``optax_rows`` is None where optax could not be imported."""
    sk_lines = ["| objective | data term | penalty weight | infer_reduction says |", "| --- | --- | --- | --- |"]
    for r in sklearn_rows:
        sk_lines.append(f"| `{r.model}` | {escape(r.data)} | {escape(r.penalty)} | {escape(r.says)} |")
    return "\n".join(["## PyTorch's loss modules", "", f"The class weights are w = {weights}.", "",
                      *_torch_table(torch_rows), "",
                      "## optax's losses", "", *_optax_table(optax_rows), "",
                      "## scikit-learn's training objectives", "", *sk_lines, ""])


# ------------------------------------------------------------------ peers, from the benchmark record


def _columns(rule: str) -> list[tuple[int, int]]:
    """Column spans from a table's rule line of dashes (runs separated by spaces)."""
    return [(m.start(), m.end()) for m in re.finditer(r"-+", rule)]


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    # Cells are right-aligned, so each cell ends where its dashes end; it starts after the previous column.
    starts = [0] + [end for _, end in spans[:-1]]
    return [line[s:e].strip() for s, (_, e) in zip(starts, spans)]


def with_code(text: str) -> str:
    """Escaped text whose `backtick spans` stay code."""
    parts = " ".join(text.split()).split("`")
    return "".join(f"`{p}`" if i % 2 else re.sub(r"([\\*_\[\]<>|#])", r"\\\1", p) for i, p in enumerate(parts))


def benchmark_record(readme: str) -> tuple[str, list[list[str]]]:
    """The "Run on ..." paragraph and the result table of benchmarks/README.md's Results section."""
    if "## Results" not in readme:
        raise ValueError("benchmarks/README.md has no ## Results section")
    section = readme.split("## Results", 1)[1]
    run = re.search(r"^Run on .*?(?=\n\n)", section, re.S | re.M)
    block = re.search(r"```\n(.*?)```", section, re.S)
    if run is None or block is None:
        raise ValueError("benchmarks/README.md: no 'Run on ...' paragraph or result block under ## Results")
    rows = block.group(1).rstrip("\n").splitlines()
    rule = next(i for i, line in enumerate(rows) if set(line.strip()) <= {"-", " "} and line.strip())
    spans = _columns(rows[rule])
    header = _cells(rows[rule - 1], spans)
    return " ".join(run.group(0).split()), [header] + [_cells(line, spans) for line in rows[rule + 1:]]


def _oracle_section(readme: str) -> list[str]:
    """The benchmark record of oracle.py as a table, with the run it was copied from and its note on dashes."""
    run, rows = benchmark_record(readme)
    header = ["measurement"] + rows[0][1:]
    lines = ["| " + " | ".join(escape(h) for h in header) + " |",
             "| --- |" + " ---: |" * (len(header) - 1)]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows[1:]]
    limits = re.search(r"^Cost limits:.*?(?=\n\n)", readme, re.S | re.M)
    note = ([f"A dash with [a] or [c] marks a check left out at that size for its cost. The record says "
             f"why: *{with_code(limits.group(0))}*", ""] if limits else [])
    first, last = (escape(re.sub(r"^n\s*≈\s*", "", h)) for h in (rows[0][1], rows[0][-1]))
    return [f"## numpy MLPs of about {first} to {last} parameters (`benchmarks/oracle.py`)", "",
            f"Copied by this build from `benchmarks/README.md`, which records this run: *{with_code(run)}*",
            "", *lines, "", *note]


PEERS_HEADING = "## `peers.py`"


def _peers_section(readme: str) -> str:
    """The text of benchmarks/README.md's peers.py section, up to the next ## heading."""
    found = re.search(rf"^{re.escape(PEERS_HEADING)}.*?(?=^## |\Z)", readme, re.S | re.M)
    if found is None:
        raise ValueError(f"benchmarks/README.md has no section starting {PEERS_HEADING!r}")
    return found.group(0)


def _row_cells(line: str) -> list[str]:
    """The cells of a Markdown table row, with any escaped pipe in a cell unescaped."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def peers_record(readme: str) -> tuple[str, list[list[str]]]:
    """The "Measured on ..." paragraph and the Markdown table (header first) of benchmarks/README.md's
    peers.py section; a ValueError says which is missing, so the docs build fails rather than drop it."""
    section = _peers_section(readme)
    run = re.search(r"^Measured on .*?(?=\n[ \t]*\n)", section, re.S | re.M)
    if run is None:
        raise ValueError(f"benchmarks/README.md: no 'Measured on ...' paragraph under {PEERS_HEADING!r}")
    table = re.search(r"(?:^\|.*\|[ \t]*(?:\n|\Z))+", section[run.end():], re.M)
    lines = table.group(0).splitlines() if table else []
    if len(lines) < 3 or not re.fullmatch(r"\|(?:\s*:?-+:?\s*\|)+", lines[1].strip()):
        raise ValueError(f"benchmarks/README.md: no Markdown table (header, rule, rows) after the "
                         f"'Measured on ...' paragraph under {PEERS_HEADING!r}")
    rows = [_row_cells(line) for line in [lines[0], *lines[2:]]]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"benchmarks/README.md: the table under {PEERS_HEADING!r} has rows of different widths")
    return re.sub(r":$", ".", " ".join(run.group(0).split())), rows


def _peers_versions(readme: str) -> str | None:
    """The line of versions that peers.py prints under its table, if the record kept it."""
    section = _peers_section(readme)
    found = re.search(r"^[^|\n]*\bPython \d.*$", section[section.rfind("\n|"):], re.M)
    return found.group(0).strip() if found else None


def _torch_section(readme: str) -> list[str]:
    run, rows = peers_record(readme)
    header = rows[0]
    # The size column reads "10^6 (1,025,760)"; the heading names the sizes the record covers.
    sizes = dict.fromkeys(r[header.index("size")].split(" (")[0] for r in rows[1:]) if "size" in header else {}
    of = f" of {' and '.join(map(escape, sizes))} parameters" if sizes else ""
    versions = _peers_versions(readme)
    return [f"## PyTorch MLPs{of} (`benchmarks/peers.py`)", "",
            f"Copied by this build from `benchmarks/README.md`, which records this run: *{with_code(run)}*"
            + (f" Under its table the script printed: *{with_code(versions)}*." if versions else ""), "",
            "| " + " | ".join(with_code(h) for h in header) + " |",
            "|" + " --- |" * len(header),
            *("| " + " | ".join(with_code(c) for c in row) + " |" for row in rows[1:]), "",
            "In the torch and jax columns, the figure in parentheses is that tool's time over gradcheck's "
            "in the same run: below 1× the tool was faster. *missed* counts passes on wrong code and "
            "*false alarm* failures on right code; gradcheck's *undetermined* is neither. A dash marks "
            "a tool not run at that size (torch's full mode runs only where it takes under a minute).", ""]


def peers(readme: str) -> str:
    """Both dated peer records of benchmarks/README.md as tables, each with the run it was copied from:
    peers.py's on a PyTorch model first, then oracle.py's on numpy MLPs by size."""
    return "\n".join([*_torch_section(readme), *_oracle_section(readme)])
