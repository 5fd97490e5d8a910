from __future__ import annotations

import subprocess
import sys

import pytest

from gradcheck.cli import main


def test_list_names_every_claim(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for cid in ("A1", "A7", "B3", "F2"):
        assert f"\n{cid} " in "\n" + out


def test_verify_prints_a_row_per_claim_and_exits_0(capsys):
    assert main(["verify", "--claim", "A2", "--claim", "b1", "--examples", "15", "--jobs", "1"]) == 0
    captured = capsys.readouterr()
    assert "A2  universal  holds" in captured.out and "B1  witnessed  holds" in captured.out
    assert "witness (tanh" in captured.out and "y=[0., 1.]" in captured.out
    assert "[1/2] A2: holds" in captured.err  # progress


def test_verify_exits_1_when_a_claim_fails(monkeypatch, capsys):
    from gradcheck.claims import REGISTRY, Claim, Property, WITNESSED
    from hypothesis import strategies as st
    from gradcheck.verdict import Verdict
    never = Property("never fails", lambda: st.just(0), lambda c: Verdict("Z9", "l", "holds", 0, 1, "m"))
    monkeypatch.setitem(REGISTRY, "Z9", Claim("Z9", "t", WITNESSED, "s", "c", "p", fails_for=(never,)))
    # In this process: a spawned worker would not see the patched registry.
    assert main(["verify", "--claim", "Z9", "--examples", "3", "--quiet", "--jobs", "1"]) == 1
    assert "0 of 1 claims hold" in capsys.readouterr().out


def test_verify_in_worker_processes_reports_in_the_order_asked(capsys):
    assert main(["verify", "--claim", "B3", "--claim", "A4", "--examples", "3", "--jobs", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.index("B3  witnessed") < captured.out.index("A4  universal"), captured.out
    assert "B3 witness (" in captured.out and "2 of 2 claims hold" in captured.out
    assert "A4: holds after 3 cases" in captured.err and "B3: holds" in captured.err


@pytest.mark.parametrize("argv, text", [(["verify", "--claim", "Q1"], "Q1 is not a claim"),
                                        (["verify", "--examples", "0"], "--examples 0"),
                                        (["verify", "--jobs", "0"], "--jobs 0")])
def test_verify_refuses_bad_options(argv, text):
    with pytest.raises(SystemExit, match=text):
        main(argv)


def test_console_script_runs():
    done = subprocess.run([sys.executable, "-m", "gradcheck.cli", "list"], capture_output=True, text=True)
    assert done.returncode == 0 and "Linearity" in done.stdout
