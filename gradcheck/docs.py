"""The documentation builder behind ``gradcheck docs``, and its Sphinx extension.

``build()`` copies the hand-written sources of ``docs/`` into a staging
directory, computes everything the pages show (every claim run through
:func:`gradcheck.claims.run_claim`, the plots, the real-loss tables, the
tutorial's pytest run, the benchmark record), writes those as generated
pages beside the sources, and runs Sphinx (MyST Markdown and autodoc) into
``docs/_build/html``. Nothing generated is ever written into ``docs/``.

The extension (``setup``, named in ``docs/conf.py``) adds two things:

- the ``gradcheck-run`` directive, which executes its Python code while the
  page is read and shows the code with what it printed: an example that
  raises fails the build, so no example on the site can go stale;
- a check, once every page is read, that each public name of gradcheck
  (``__all__`` of the package and of its adapters) has a docstring and is
  documented on some page: the build fails on an undocumented one.

Sphinx, MyST and matplotlib are imported only inside the functions that use
them, so ``import gradcheck`` needs none of them.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

from . import _docpages as pages
from . import _docplots as plots
from . import _realworld as rw
from .claims import REGISTRY, ClaimReport, run_claim

__all__ = ["DEFAULT_EXAMPLES", "DocsError", "build", "setup"]

# Enough cases per property that the derandomized search finds every witness
# of the catalog (6 is the fewest that does), with a margin; the build's
# time is mostly the witnesses' shrinking, which does not grow with this.
DEFAULT_EXAMPLES = 8

# The public face whose every name must be documented (DESIGN §2's contract).
PUBLIC_MODULES = ("gradcheck", "gradcheck.torch", "gradcheck.jax")

GENERATED = "_generated"


class DocsError(Exception):
    """The docs could not be built: a missing tool, a failed example, a Sphinx error."""


@dataclass(frozen=True)
class _Paths:
    source: Path  # docs/ as checked in
    root: Path  # the repository: benchmarks/ lives here
    stage: Path  # the copy Sphinx reads, generated pages beside the sources
    out: Path  # the HTML


# ------------------------------------------------------------------ build


def build(*, source: str | Path | None = None, out: str | Path | None = None,
          examples: int = DEFAULT_EXAMPLES, claims: Sequence[str] | None = None,
          seed: int | None = None, strict: bool = False, log: TextIO | None = None) -> Path:
    """Build the HTML site and return the path of its ``index.html``.

    ``source``: the ``docs/`` directory (default: found from the working
    directory upward). ``out``: where the HTML goes (default
    ``docs/_build/html``). ``examples``: generated cases per property of each
    claim. ``claims``: build only these claims' pages (default: all).
    ``strict``: Sphinx warnings are errors.

    >>> from gradcheck.docs import build
    >>> index = build(examples=8)   # doctest: +SKIP
    """
    log = log or sys.stderr
    _require_tools()
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise DocsError(f"examples={examples!r} must be an integer of at least 1")
    ids = _claim_ids(claims)
    src = _source_dir(source)
    with tempfile.TemporaryDirectory(prefix="gradcheck-docs-") as tmp:
        paths = _Paths(src, src.parent, Path(tmp) / "src", Path(out) if out else src / "_build" / "html")
        shutil.copytree(src, paths.stage, ignore=shutil.ignore_patterns("_build", "__pycache__"))
        _generate(paths, ids, examples, seed, log)
        if (paths.out / ".buildinfo").exists():  # a previous site: its pages of other claims would linger
            shutil.rmtree(paths.out)
        with _phase(log, "sphinx"):
            _sphinx(paths, Path(tmp) / "doctrees", strict, log)
    return paths.out / "index.html"


def _require_tools() -> None:
    missing = [m for m in ("sphinx", "myst_parser", "matplotlib") if not _importable(m)]
    if missing:
        raise DocsError(f"building the docs needs {', '.join(missing)}: pip install 'gradcheck[docs]'")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _claim_ids(claims: Sequence[str] | None) -> tuple[str, ...]:
    if not claims:
        return tuple(REGISTRY)
    unknown = [c for c in claims if c.upper() not in REGISTRY]
    if unknown:
        raise DocsError(f"claims={unknown[0]!r} is not a claim; known: {', '.join(REGISTRY)}")
    wanted = {c.upper() for c in claims}
    return tuple(c for c in REGISTRY if c in wanted)  # catalog order


def _source_dir(source: str | Path | None) -> Path:
    if source is not None:
        found = Path(source).resolve()
        if not (found / "conf.py").is_file():
            raise DocsError(f"source={str(source)!r} has no conf.py: pass the docs/ directory of gradcheck")
        return found
    for here in (Path.cwd(), *Path.cwd().parents):
        if (here / "docs" / "conf.py").is_file() and (here / "pyproject.toml").is_file():
            return here / "docs"
    raise DocsError("no docs/conf.py here or above: run `gradcheck docs` inside a clone of gradcheck, "
                    "or pass --source DIR")


@contextlib.contextmanager
def _phase(log: TextIO, name: str) -> Iterator[None]:
    start = time.perf_counter()
    log.write(f"[docs] {name} ...\n")
    log.flush()
    yield
    log.write(f"[docs] {name}: {time.perf_counter() - start:.1f} s\n")
    log.flush()


# ------------------------------------------------------------------ what the pages show


def _generate(paths: _Paths, ids: tuple[str, ...], examples: int, seed: int | None, log: TextIO) -> None:
    gen = paths.stage / GENERATED
    gen.mkdir()
    info = pages.Build(datetime.date.today().isoformat(), _machine(), examples,
                       "derandomized" if seed is None else f"seed {seed}", ids)
    # The tutorial runs in its own process meanwhile: the build's two longest parts overlap.
    tutorial = _Tutorial(paths.stage / "tutorial", gen)
    try:
        _measure(paths, ids, examples, seed, info, log)
        with _phase(log, "tutorial (pytest)"):
            tutorial.finish()
    finally:
        tutorial.stop()  # a build that failed elsewhere leaves no pytest running


def _measure(paths: _Paths, ids: tuple[str, ...], examples: int, seed: int | None, info: pages.Build,
             log: TextIO) -> None:
    gen = paths.stage / GENERATED
    with _phase(log, "plots"):
        figures = plots.draw_all(gen / "figures")
    with _phase(log, f"claims ({len(ids)}, {examples} cases per property)"):
        reports = [_run(cid, n, len(ids), examples, seed, log) for n, cid in enumerate(ids, 1)]
    _write_claims(paths.stage, reports, info, figures)
    with _phase(log, "real losses"):
        optax_rows = [rw.judge_optax(r) for r in rw.optax_rows()] if rw.have_optax() else None
        (gen / "real_losses.md").write_text(pages.real_losses(
            [rw.judge_torch(r) for r in rw.torch_rows()], optax_rows,
            [rw.judge_sklearn(r) for r in rw.sklearn_rows()], rw.class_weights()))
    (gen / "peers.md").write_text(pages.peers((paths.root / "benchmarks" / "README.md").read_text()))
    (gen / "build.md").write_text(_build_facts(info))


def _machine() -> str:
    import numpy

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {numpy.__version__}")


def _build_facts(info: pages.Build) -> str:
    return (f"Built on {info.date} on {pages.escape(info.machine)}; every figure, table, witness and plot "
            f"on this site was computed by that build ({info.examples} generated cases per property, "
            f"{info.seed}).\n")


def _run(cid: str, n: int, total: int, examples: int, seed: int | None, log: TextIO) -> ClaimReport:
    report = run_claim(REGISTRY[cid], examples=examples, seed=seed)
    log.write(f"[docs]   [{n}/{total}] {cid}: {report.outcome}, {report.cases} cases, {report.seconds:.1f} s\n")
    log.flush()
    return report


def _write_claims(stage: Path, reports: list[ClaimReport], info: pages.Build, figures: list) -> None:
    folder = stage / "claims"
    folder.mkdir()
    for report in reports:
        mine = [f for f in figures if f.claim == report.claim.id]
        (folder / f"{report.claim.id}.md").write_text(pages.claim_page(report, info, mine))
    (folder / "index.md").write_text(pages.claims_index(reports, info, figures))
    (stage / GENERATED / "summary.md").write_text(pages.summary(reports, info, figures))


class _Tutorial:
    """The tutorial's tests, run by pytest with gradcheck's plugin in a process of their own.

    ``test_training.py`` must pass and ``test_mistakes.py`` must fail test by
    test; anything else fails the build. What pytest printed goes on the page.
    """

    PASS, FAIL = "test_training.py", "test_mistakes.py"

    def __init__(self, folder: Path, gen: Path) -> None:
        self.folder, self.gen = folder, gen
        (folder / "pytest.ini").write_text("[pytest]\n")  # this folder is the rootdir, not the project's
        command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--tb=short",
                   "--junit-xml", str(gen / "tutorial.xml"), self.PASS, self.FAIL]
        self.process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})

    def finish(self, timeout: float = 600.0) -> None:
        output, _ = self.process.communicate(timeout=timeout)
        outcomes = self._outcomes()
        wrong = [f"{name}: {got}" for name, got in outcomes.items()
                 if got != ("passed" if name.startswith(self.PASS) else "failed")]
        if wrong or not outcomes:
            raise DocsError("the tutorial's tests did not run as the page says "
                            f"({'; '.join(wrong) or 'no test ran'}):\n{output}")
        (self.gen / "tutorial_passed.txt").write_text(_pytest_lines(output, self.PASS))
        (self.gen / "tutorial_failed.txt").write_text(_failure_messages(output))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _outcomes(self) -> dict[str, str]:
        import xml.etree.ElementTree as ET

        path = self.gen / "tutorial.xml"
        if not path.exists():
            return {}
        outcomes = {}
        for case in ET.parse(path).iter("testcase"):
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}.py::{case.get('name')}"
            outcomes[name] = _junit_outcome(case)
        return outcomes


def _junit_outcome(case: Any) -> str:
    """passed, skipped, failed (by a gradcheck assertion, as the page means), or error."""
    failure = case.find("failure")
    if failure is not None:
        said = failure.get("message", "")
        return "failed" if said.startswith("AssertionError: [gradcheck]") else f"error ({said[:200]})"
    if case.find("error") is not None:
        return "error"
    return "skipped" if case.find("skipped") is not None else "passed"


def _pytest_lines(output: str, file: str) -> str:
    """The gradcheck header lines and the result line of each test in ``file``."""
    keep = [line for line in output.splitlines() if line.startswith(("gradcheck:", file + "::"))]
    return "\n".join(line.split(" [")[0] if "::" in line else line for line in keep) + "\n"


def _failure_messages(output: str, width: int = 80) -> str:
    """Each failing test's name and its ``E`` lines (the verdict), wrapped to what the
    page's text blocks hold (about 85 characters: wider lines would wrap twice)."""
    import textwrap

    lines = []
    for line in output.splitlines():
        title = re.fullmatch(r"_+ (test\w+) _+", line)
        if title:
            lines += ["", title.group(1)]
        elif line.startswith("E "):
            text = line[4:].rstrip() if line.startswith("E   ") else line[1:].strip()
            indent = " " * (len(text) - len(text.lstrip()) + 2)
            lines += textwrap.wrap(text, width, initial_indent="", subsequent_indent=indent,
                                   drop_whitespace=True) or [""]
    return "\n".join(lines).strip("\n") + "\n"


# ------------------------------------------------------------------ Sphinx


def _sphinx(paths: _Paths, doctrees: Path, strict: bool, log: TextIO) -> None:
    from sphinx.cmd.build import build_main

    args = ["-b", "html", "-q", "-E", "-d", str(doctrees), str(paths.stage), str(paths.out)]
    if strict:
        args[:0] = ["-W", "--keep-going"]
    code = build_main(args)
    if code != 0:
        raise DocsError(f"sphinx-build exited with {code}" + (" (warnings are errors)" if strict else ""))
    log.write(f"[docs] site: {paths.out / 'index.html'}\n")


def setup(app: Any) -> dict[str, Any]:
    """The Sphinx extension: the ``gradcheck-run`` directive and the public-name check."""
    app.add_directive("gradcheck-run", _run_directive())
    app.add_role("claim", _claim_role)
    app.add_config_value("gradcheck_public_modules", PUBLIC_MODULES, "env")
    app.connect("env-check-consistency", _check_public_names)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}


def _run_directive() -> type:
    from docutils import nodes
    from sphinx.errors import ExtensionError
    from sphinx.util.docutils import SphinxDirective

    class RunDirective(SphinxDirective):
        """Runs its Python code while the page is read; shows it and its output.

        The blocks of one page share a namespace, so a later block can use what
        an earlier one defined.
        """

        has_content = True

        def run(self) -> list:
            code = "\n".join(self.content)
            namespace = self.env.temp_data.setdefault("gradcheck_run", {"__name__": "__gradcheck_docs__"})
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    exec(compile(code, f"<{self.env.docname}:{self.lineno}>", "exec"), namespace)  # noqa: S102
            except Exception as e:  # an example that raises is a broken page: stop the build
                raise ExtensionError(f"{self.env.docname}, line {self.lineno}: the example raised "
                                     f"{type(e).__name__}: {e}") from e
            shown = [nodes.literal_block(code, code, language="python")]
            if printed.getvalue():
                out = printed.getvalue().rstrip("\n")
                shown.append(nodes.literal_block(out, out, language="text", classes=["gradcheck-output"]))
            return shown

    return RunDirective


def _claim_role(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
                options: dict | None = None, content: Sequence[str] = ()) -> tuple[list, list]:
    """``{claim}`A1``` or ``{claim}`Linearity <A1>```: a link to the claim's page,
    or plain text where this build made no page for it (a build of some claims)."""
    from docutils import nodes
    from sphinx import addnodes

    named = re.fullmatch(r"\s*(.*?)\s*<([A-Z][0-9]+)>\s*", text, re.S)
    label, cid = (named.group(1), named.group(2)) if named else (text.strip(), text.strip())
    if cid not in REGISTRY:
        msg = inliner.reporter.error(f"{{claim}}: {cid!r} is not a claim; known: {', '.join(REGISTRY)}",
                                     line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    env = inliner.document.settings.env
    if f"claims/{cid}" not in env.found_docs:
        return [nodes.inline(label, label)], []
    ref = addnodes.pending_xref(rawtext, refdomain="std", reftype="doc", reftarget=f"/claims/{cid}",
                                refexplicit=True, refwarn=True, refdoc=env.docname)
    ref += nodes.inline(label, label, classes=["xref", "std", "std-doc"])
    return [ref], []


def _check_public_names(app: Any, env: Any) -> None:
    import importlib
    import inspect

    from sphinx.errors import ExtensionError

    documented = set(env.get_domain("py").objects)
    missing = []
    for module_name in app.config.gradcheck_public_modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            full = f"{module_name}.{name}"
            if full not in documented or not (inspect.getdoc(getattr(module, name)) or "").strip():
                missing.append(full)
    if missing:
        raise ExtensionError("undocumented public names (give each a docstring and an entry on an API "
                             "page): " + ", ".join(missing))
