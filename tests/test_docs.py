"""The docs builder (gradcheck/docs.py), as CI runs it: a fast profile (three claims,
one of each kind, three cases per property) with Sphinx warnings as errors.

The full site (every claim, the default number of cases) is `gradcheck docs`;
this builds everything else at full size: every plot, the real-loss tables,
the tutorial's pytest run, the executed examples and the API reference.
"""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

for _module in ("sphinx", "myst_parser", "matplotlib"):
    pytest.importorskip(_module)

from gradcheck import _docpages as pages  # noqa: E402
from gradcheck import cli  # noqa: E402
from gradcheck import docs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = ("A1", "C1", "C5")  # universal, witnessed, asymptotic: each finishes in a few seconds
EXAMPLES = 3


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("html")
    log = io.StringIO()
    index = docs.build(source=ROOT / "docs", out=out, examples=EXAMPLES, claims=FAST, strict=True, log=log)
    return SimpleNamespace(out=out, index=index, log=log.getvalue())


def page(site: SimpleNamespace, name: str) -> str:
    return (site.out / f"{name}.html").read_text()


def text(site: SimpleNamespace, name: str) -> str:
    """The page's words, without tags, for reading what a person would."""
    return " ".join(re.sub(r"<[^>]+>", " ", page(site, name)).split())


def test_the_site_builds_with_warnings_as_errors_and_has_every_page(site):
    assert site.index == site.out / "index.html" and site.index.exists()
    for name in ("index", "claims/index", "questions", "real-losses", "peers", "tutorial", "api", "reference"):
        assert (site.out / f"{name}.html").exists(), name
    assert not (ROOT / "docs" / "_generated").exists(), "generated pages must not land in docs/"


def test_each_claim_page_shows_what_this_build_measured(site):
    for cid in FAST:
        words = text(site, f"claims/{cid}")
        assert "This build: verified" in words, cid
        assert f"{EXAMPLES} per property" in words, cid
        assert "Statement." in words and "Conditions." in words and "Proof idea." in words, cid
    witness = text(site, "claims/C1")
    assert "Witness:" in witness and "The smallest case Hypothesis shrank it to" in witness
    assert "sizes=[2, 1]" in witness  # the shrunk short last batch


def test_only_the_built_claims_are_linked(site):
    home = page(site, "index")
    assert 'href="claims/A1.html"' in home and 'href="claims/A2.html"' not in home
    assert not (site.out / "claims" / "A2.html").exists()


def test_the_plots_are_drawn_and_each_is_on_its_claims_page(site):
    images = sorted(p.name for p in (site.out / "_images").glob("*.png"))
    assert len(images) >= 1 and "sum_vs_mean.png" in images  # C1's plot, on a built page
    assert "sum_vs_mean.png" in page(site, "claims/C1")
    assert "largest parameter difference over the run" in text(site, "claims/C1")


def test_the_real_losses_are_measured(site):
    words = text(site, "real-losses")
    assert re.search(r"CrossEntropyLoss\(\) class indices mean B = 6", words)
    assert re.search(r"KLDivLoss\(reduction='mean'\) probabilities mean B·C = 24", words)
    assert "divided by B along with the data" in words  # LogisticRegression, MLPRegressor


def test_the_tutorial_ran_and_shows_the_plugins_messages(site):
    words = text(site, "tutorial")
    assert words.count("PASSED") == 3
    assert "[gradcheck] check_accumulation failed" in words
    assert "[gradcheck] check_data_parallel failed" in words


def test_examples_ran_during_the_build(site):
    assert "[gradcheck] check_gradient failed" in text(site, "index")
    assert "gradient of the mean: [0.]" in text(site, "questions")


def test_the_peers_table_names_its_dated_run(site):
    words = text(site, "peers")
    assert re.search(r"Run on \d{4}-\d{2}-\d{2}", words) and "torch gradcheck fast_mode" in words


def test_the_peers_page_also_shows_the_dated_peers_py_run(site):
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    date = re.search(r"^Measured on (\d{4}-\d{2}-\d{2})", readme, re.M).group(1)
    words = text(site, "peers")
    assert f"Measured on {date} with python benchmarks/peers.py" in words
    assert re.search(r"float64 one entry 1% wrong [^|]*?0/10 missed, \d+ evals, named 10/10", words)
    html = page(site, "peers")
    assert html.count("<table") == 2 and "| size |" not in html  # tables, not raw pipes


def test_no_page_needs_the_network(site):
    for html in site.out.rglob("*.html"):
        body = html.read_text()
        assert "mathjax" not in body.lower(), html.name
        assert not re.search(r'src="(https?:)?//', body), html.name


# ------------------------------------------------------------------ the extension on a tiny project


def tiny_build(tmp_path: Path, body: str, public: tuple[str, ...] = ()) -> int:
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(textwrap.dedent(f"""
        extensions = ["myst_parser", "sphinx.ext.autodoc", "gradcheck.docs"]
        gradcheck_public_modules = {public!r}
    """))
    (src / "index.md").write_text(textwrap.dedent(body))
    return build_main(["-b", "html", "-q", "-W", str(src), str(tmp_path / "out")])


def test_an_example_that_raises_fails_the_build(tmp_path, capsys):
    code = tiny_build(tmp_path, """
        # Page

        ```{gradcheck-run}
        raise ValueError("stale example")
        ```
    """)
    assert code != 0
    assert "stale example" in capsys.readouterr().err


def test_an_example_shows_its_code_and_output(tmp_path):
    assert tiny_build(tmp_path, """
        # Page

        ```{gradcheck-run}
        x = 6 * 7
        ```

        ```{gradcheck-run}
        print("answer", x)
        ```
    """) == 0
    assert "answer 42" in (tmp_path / "out" / "index.html").read_text()


def test_an_undocumented_public_name_fails_the_build(tmp_path, capsys):
    code = tiny_build(tmp_path, """
        # API

        ```{eval-rst}
        .. autofunction:: gradcheck.check_gradient
        ```
    """, public=("gradcheck",))
    assert code != 0
    err = capsys.readouterr().err
    assert "undocumented public names" in err and "gradcheck.check_reduction" in err
    assert "gradcheck.check_gradient," not in err


# ------------------------------------------------------------------ pieces


def test_the_benchmark_record_is_read_with_its_date_and_columns():
    run, rows = pages.benchmark_record((ROOT / "benchmarks" / "README.md").read_text())
    assert run.startswith("Run on ")
    assert len({len(r) for r in rows}) == 1 and rows[0][1].startswith("n ≈")


TINY_PEERS = """\
## `peers.py`: gradcheck and others

Measured on 2000-01-02 with `python benchmarks/peers.py --sizes 10^3 --markdown`
(a test machine). A ratio is that tool's time over gradcheck's:

| size | case | gradcheck | jax |
|---|---|---|---|
| 10^3 (1,000) | right | 0.1 s, 0/3 false alarm | 0.2 s (2×), a \\| b |

x86_64, Python 3.0; medians per call

How to read it:

- words

## Next section

| not | this |
|---|---|
"""


def test_the_peers_py_record_is_read_with_its_date_and_cells():
    run, rows = pages.peers_record("# Benchmarks\n\n" + TINY_PEERS)
    assert run == ("Measured on 2000-01-02 with `python benchmarks/peers.py --sizes 10^3 --markdown` "
                   "(a test machine). A ratio is that tool's time over gradcheck's.")
    assert rows == [["size", "case", "gradcheck", "jax"],
                    ["10^3 (1,000)", "right", "0.1 s, 0/3 false alarm", "0.2 s (2×), a | b"]]


def test_a_missing_peers_py_section_or_table_fails_loudly():
    with pytest.raises(ValueError, match="no section starting '## `peers.py`'"):
        pages.peers_record("# Benchmarks\n\n## Results\n\nRun on 2000-01-01.\n")
    with pytest.raises(ValueError, match="no 'Measured on ...' paragraph"):
        pages.peers_record(TINY_PEERS.replace("Measured on", "Run on"))
    no_table = re.sub(r"^\|.*\n", "", TINY_PEERS.split("## Next")[0], flags=re.M)
    with pytest.raises(ValueError, match="no Markdown table"):
        pages.peers_record(no_table + "## Next\n\n| not | this |\n|---|---|\n| a | b |\n")


def test_the_peers_page_text_has_both_records_in_order():
    generated = pages.peers((ROOT / "benchmarks" / "README.md").read_text())
    torch_at, oracle_at = generated.index("(`benchmarks/peers.py`)"), generated.index("(`benchmarks/oracle.py`)")
    assert torch_at < oracle_at and "Measured on " in generated[:oracle_at] and "Run on " in generated[oracle_at:]


def test_failure_messages_are_the_verdicts_wrapped():
    output = textwrap.dedent("""\
        ____________________ test_one ____________________
        test_x.py:3: in test_one
            gradcheck.assert_gradient(f, g, w)
        E   AssertionError: [gradcheck] check_gradient failed: finite differences — """ + "word " * 40 + """
        E     error 1.0e+00 > tolerance 1.0e-10
    """)
    shown = docs._failure_messages(output, width=60)
    lines = shown.splitlines()
    assert lines[0] == "test_one" and lines[1].startswith("AssertionError: [gradcheck]")
    assert all(len(line) <= 60 for line in lines) and lines[-1].strip().startswith("error 1.0e+00")


def test_escape_keeps_table_cells_whole():
    assert pages.escape("a | b * c_d") == r"a \| b \* c\_d"


def test_cli_refuses_an_unknown_claim(capsys):
    assert cli.main(["docs", "--claim", "Z9", "--source", str(ROOT / "docs")]) == 1
    assert "Z9" in capsys.readouterr().err
