"""The scripts in ``examples/`` run in quick mode and say what they promise.

Each script runs as a subprocess (``sys.executable``, ``MPLBACKEND=Agg``,
working directory and figure in pytest's ``tmp_path``). Besides the exit
status and the written figure, the numbers each script prints -- agreement of
predicted and actual leave-one-out changes, locality of influence -- are
parsed and checked against the claims of the script's docstring, with a
margin: these are measurements of real refits, not fixed constants.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_example(name, tmp_path, *args, quick_env=False):
    """Run ``examples/<name>`` in ``tmp_path``; returns its stdout (fails on a
    non-zero exit status, showing stderr)."""
    env = dict(os.environ)
    env.pop("SKINFLUENCE_QUICK", None)
    env["MPLBACKEND"] = "Agg"
    # one BLAS thread per script: under pytest-xdist the cores are taken
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    if quick_env:
        env["SKINFLUENCE_QUICK"] = "1"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def assert_png(path, min_width=400, min_height=200):
    """``path`` is a PNG image of at least the given size."""
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG file"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width >= min_width and height >= min_height, (width, height)


def parse(pattern, text):
    """All matches of ``pattern`` (multi-line) in ``text``; at least one."""
    found = re.findall(pattern, text, flags=re.MULTILINE)
    assert found, f"no line matching {pattern!r} in:\n{text}"
    return found


def test_pipeline_dataframe(tmp_path):
    """Quick mode through ``SKINFLUENCE_QUICK=1``: the influence estimates on
    the predicted probability agree with refits of the pipeline's final step."""
    out = run_example("plot_pipeline_dataframe.py", tmp_path, quick_env=True)
    assert "Test accuracy" in out
    assert "Training patients whose removal would raise p(true) most" in out
    assert "per unit of the original column" in out
    # quick mode: 10 refits, not 30
    ((n_rows, pearson, slope),) = parse(
        r"Leave-one-out check on the (\d+) most influential patients: "
        r"Pearson R = ([-\d.]+), slope = ([-\d.]+)",
        out,
    )
    assert int(n_rows) == 10
    assert float(pearson) > 0.95
    assert 0.7 < float(slope) < 1.3


def test_figure2_digits(tmp_path):
    """Koh & Liang's Figure 2 on multinomial logistic regression: both
    approximations rank the rows right; the influence function overshoots
    (slope above 1) and the Newton step brings the slope back to about 1."""
    png = tmp_path / "figure2.png"
    out = run_example("plot_figure2_digits.py", tmp_path, "--quick", "--out", str(png))
    assert "300 training rows" in out  # quick mode
    assert f"wrote {png}" in out
    assert_png(png)
    stats = {
        name: (float(r), float(s))
        for name, r, s in parse(
            r"^(influence|newton)\s+Pearson R = ([-\d.]+)\s+slope = ([-\d.]+)", out
        )
    }
    assert set(stats) == {"influence", "newton"}
    r_infl, s_infl = stats["influence"]
    r_newton, s_newton = stats["newton"]
    assert r_infl > 0.9
    assert r_newton > 0.95
    assert s_infl > 1.1  # the first-order estimate overshoots the largest effects
    assert 0.8 < s_newton < 1.2
    assert abs(s_newton - 1.0) < abs(s_infl - 1.0)


def test_figure3_smooth_hinge(tmp_path):
    """Koh & Liang's Figure 3 on a linear SVM: the active-set method correlates
    better than the smoothed hinge and gets the scale roughly right; the
    smoothed Hessian at small temperature underestimates the changes by a
    large factor; the decremental path is exact."""
    png = tmp_path / "figure3.png"
    out = run_example("plot_figure3_smooth_hinge.py", tmp_path, "--quick", "--out", str(png))
    assert f"wrote {png}" in out
    assert_png(png, min_width=1000)
    rows = parse(r"^(smoothed t=\S+|active_set|path)\s+([-\d.]+)\s+([-\d.]+)\s*$", out)
    stats = {name: (float(r), float(s)) for name, r, s in rows}
    # quick mode: two temperatures
    assert set(stats) == {"smoothed t=0.001", "smoothed t=0.1", "active_set", "path"}
    r_path, s_path = stats.pop("path")
    assert r_path >= 0.999 and abs(s_path - 1.0) <= 0.01  # exact: equals the refits
    r_active, s_active = stats.pop("active_set")
    assert r_active > 0.5
    assert all(r_active >= r for r, _ in stats.values()), (r_active, stats)
    assert 0.3 < s_active < 2.0
    assert stats["smoothed t=0.001"][1] > 10.0  # actual / predicted: far too small


def test_figure4_rbf_vs_logistic(tmp_path):
    """Koh & Liang's Figure 4: only the RBF SVM's support vectors have
    influence, and it is more local than the logistic regression's."""
    png = tmp_path / "figure4.png"
    out = run_example("plot_figure4_rbf_vs_logistic.py", tmp_path, "--quick", "--out", str(png))
    assert f"wrote {png}" in out
    assert_png(png)
    nonzero = {
        name.strip(): (int(k), int(n))
        for name, k, n in parse(
            r"^(.+?)\s+training rows with nonzero influence: (\d+) / (\d+)", out
        )
    }
    share = {
        name.strip(): float(v)
        for name, v in parse(
            r"^(.+?)\s+share of \|influence\| from the 10% nearest rows: (\S+)", out
        )
    }
    assert set(nonzero) == set(share) == {"RBF SVM", "Logistic regression"}
    k_svm, n_svm = nonzero["RBF SVM"]
    k_lr, n_lr = nonzero["Logistic regression"]
    assert n_svm == n_lr == 300
    assert 0 < k_svm < n_svm  # the support vectors only
    assert k_lr == n_lr
    assert all(0.0 < v <= 1.0 for v in share.values())
    assert share["RBF SVM"] > share["Logistic regression"] + 0.05


def test_training_set_attack(tmp_path):
    """Section 5.2: perturbing the training rows ``influence_features`` points
    at flips test predictions (checked by refitting), more with more rows, and
    far more than random perturbations of the same size."""
    png = tmp_path / "attack.png"
    out = run_example("plot_training_set_attack.py", tmp_path, "--quick", "--out", str(png))
    assert "Koh & Liang (section 5.2)" in out
    assert_png(png)
    flips = {
        (kind, int(k)): (int(n), int(m))
        for kind, k, n, m in parse(
            r"^(attack|random)\s+k=(\d+)\s+flipped (\d+) / (\d+) test predictions", out
        )
    }
    assert set(flips) == {("attack", 1), ("attack", 5), ("random", 5)}  # quick mode
    n = flips[("attack", 5)][1]
    assert n == 12
    assert flips[("attack", 5)][0] >= flips[("attack", 1)][0]
    assert flips[("attack", 5)][0] >= n // 3
    assert flips[("random", 5)][0] <= 1 < flips[("attack", 5)][0]


def test_figure6_label_review(tmp_path):
    """Figure 6: ranking by influence or training loss finds most flips after
    checking a tenth of the rows, several times what random checking finds,
    and fixing them does not lower the test accuracy."""
    png = tmp_path / "figure6.png"
    out = run_example("plot_figure6_label_review.py", tmp_path, "--quick", "--out", str(png))
    assert "Koh & Liang (Figure 6" in out
    assert_png(png)
    rows = parse(r"^(\w+)\s+found ([\d.]+) / ([\d.]+)\s+accuracy ([\d.]+) / ([\d.]+)$", out)
    stats = {name: tuple(map(float, v)) for name, *v in rows}
    assert set(stats) == {"random", "training_loss", "loo_newton"}  # quick mode
    ((noisy, clean),) = parse(r"noisy labels: ([\d.]+), all fixed: ([\d.]+)", out)
    for name in ("training_loss", "loo_newton"):
        found10, found20, _, acc20 = stats[name]
        assert found10 > 0.6 and found10 > 3 * stats["random"][0]
        assert found20 >= found10
        assert acc20 >= float(noisy) - 0.01


def test_tabular_walkthrough(tmp_path):
    """DataFrame with categorical columns, missing values and string labels:
    the default cleaner runs on it and finds flips well above chance; the CLI
    steps print their tables."""
    out = run_example("plot_tabular_walkthrough.py", tmp_path)
    ((found, n_flagged_text, chance),) = [
        (int(a), b, float(c))
        for a, b, c in parse(
            r"flagged rows: (\d+) / (\d+) \(flagging at random: ([\d.]+) expected\)", out
        )
    ]
    assert int(n_flagged_text) == 26
    assert found > 2.5 * chance
    assert "harmful rows with a flipped label" in out
    assert "rows flagged as likely mislabeled (method: iterative, rule: --fraction 0.1)" in out
    assert re.search(r"^Test line \d+: label \w+, predicted \w+$", out, re.M)


def test_group_removal(tmp_path):
    """Dropping whole segments of the diabetes patients: the first-order sum
    of single-row influences barely follows the refits, one Newton step does
    (and warns about the segments it cannot reach in one step), Newton
    iterations equal them."""
    png = tmp_path / "groups.png"
    out = run_example("plot_group_removal.py", tmp_path, "--out", str(png), quick_env=True)
    assert f"wrote {png}" in out
    assert_png(png, min_width=1000)
    ((n_groups, n_train, n_test),) = parse(
        r"^(\d+) segments of (\d+) training patients .* of (\d+) held-out patients", out
    )
    assert int(n_groups) == 10  # quick mode: sex and the quartiles of two columns
    assert int(n_train) + int(n_test) == 442
    stats = {
        name: (float(r), float(s))
        for name, r, s in parse(
            r"^(influence|newton|refit)\s+Pearson R = ([-\d.]+)\s+slope = ([-\d.]+)", out
        )
    }
    assert set(stats) == {"influence", "newton", "refit"}
    r_refit, s_refit = stats["refit"]
    assert r_refit >= 0.9999 and abs(s_refit - 1.0) <= 0.01
    r_newton, s_newton = stats["newton"]
    assert r_newton >= 0.95 and 0.8 <= s_newton <= 1.3
    assert stats["influence"][0] < 0.5  # the first-order sum misses the large effects
    assert re.search(r"^newton warns: one Newton step leaves \d+ change", out, re.M)
    assert "influence warns" not in out and "refit warns" not in out
    # the printed table: refit equals the refitted change on every segment
    rows = parse(
        r"^(\S+(?: Q\d)?)\s+(\d+)\s+([-+][\d.]+)\s+([-+][\d.]+)\s+([-+][\d.]+)\s+([-+][\d.]+)$",
        out,
    )
    assert len(rows) == int(n_groups)
    for *_, refit, actual in rows:
        assert abs(float(refit) - float(actual)) <= 2e-3
    assert "most_influential_groups by age band" in out


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_is_tested(name):
    """A new script in ``examples/`` needs its own test here."""
    tested = {
        "plot_pipeline_dataframe.py",
        "plot_figure2_digits.py",
        "plot_figure3_smooth_hinge.py",
        "plot_figure4_rbf_vs_logistic.py",
        "plot_figure6_label_review.py",
        "plot_group_removal.py",
        "plot_tabular_walkthrough.py",
        "plot_training_set_attack.py",
    }
    assert name in tested
