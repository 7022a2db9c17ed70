"""The report: opened in headless Chromium, every figure renders, the console stays clean,
names are escaped; the comparison of two studies and the model cards."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.fits import fit_study
from analysis.report import StudyView, in_bits_per_byte, write_report
from analysis.report.view import drawing_of
from analysis.results import IsoFlopFit, StudyFits, TaskFit
from analysis.trends import study_trends
from orchestrator.store import TRIAL_COLUMNS
from trainers.trial import Budget, Data, Eval, Model, Optim, TrialSpec

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
HOSTILE = "<script>alert(1)</script>"


def synthetic_view(name: str, shift: float = 0.0, trial_suffix: str = "") -> StudyView:
    """A finished study of two architectures at four sizes, with curves and zero-shot items."""
    rng = np.random.default_rng(0)
    trials, metrics, evals = [], [], []
    for arch, (e, a, alpha) in {"decoder": (1.6, 30, 0.25), "encoder": (2.2, 40, 0.3)}.items():
        for n in (25_000, 100_000, 300_000, 1_000_000):
            trial_id = f"{arch}-{n}-s0{trial_suffix}"
            loss = (e + shift + a * n**-alpha) * np.exp(rng.normal(0, 0.003))
            row = dict.fromkeys(TRIAL_COLUMNS)
            row |= {
                "trial_id": trial_id, "architecture": arch, "size": str(n), "seed": 0,
                "n_params": n, "total_params": n + 20_000, "tokens": 500_000,
                "tokens_done": 500_000, "epochs": 0.5, "flops": 6.0 * n * 500_000, "lr": 3e-3,
                "status": "finished", "val_loss": loss, "attempts": 1, "wall_s": 10.0,
                "tokens_per_s": 5e4, "mfu": 0.4, "device": "cpu x1", "hash": trial_id,
                "error": None,
            }  # fmt: skip
            trials.append(row)
            for step in range(1, 21):
                tokens = step * 25_000
                metrics.append((trial_id, step, tokens, "train_loss", loss * (1 + 1 / step)))
                if step % 5 == 0:
                    metrics.append((trial_id, step, tokens, "val_loss", loss * (1 + 0.5 / step)))
            for task, chance in (("last_word", 0.25), ("minimal_pairs", 0.5)):
                p = chance + 0.1 * np.log10(n / 10_000)
                items = (rng.random(200) < p).astype(float).tolist()
                acc = float(np.mean(items))
                evals.append(
                    {
                        "trial_id": trial_id, "architecture": arch, "n_params": n, "step": 20,
                        "task": task, "metric": "acc", "value": acc, "n_items": 200,
                        "chance": chance, "ci_low": acc - 0.06, "ci_high": acc + 0.06,
                        "per_item": items,
                    }
                )  # fmt: skip
    for task, floor in (("last_word", 0.3), ("minimal_pairs", 0.7)):
        evals.append(
            {
                "trial_id": None, "architecture": "ngram", "n_params": None, "step": 0,
                "task": task, "metric": "acc", "value": floor, "n_items": 200,
                "chance": None, "ci_low": None, "ci_high": None, "per_item": None,
            }
        )  # fmt: skip
    trials = pd.DataFrame(trials, columns=TRIAL_COLUMNS)
    evals = pd.DataFrame(evals)
    return StudyView(
        name=name,
        trials=trials,
        metrics=pd.DataFrame(metrics, columns=["trial_id", "step", "tokens", "name", "value"]),
        fits=StudyFits(fit_study(trials, n_boot=100), trends=study_trends(evals, n_boot=100)),
        evals=evals,
        data={"corpus": "builtin:kjv", "tokenizer": "bytes", "vocab_size": 359},
    )


CHECK = """<script>
window.__errors = []; window.__alerts = 0;
window.alert = () => { window.__alerts += 1; };
window.addEventListener("error", (e) => window.__errors.push(String(e.message)));
const __error = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); __error(...args); };
function layout() {
  // text labels of each figure whose boxes overlap; the trial table at this width; card links
  const overlaps = [];
  for (const plot of document.querySelectorAll(".js-plotly-plot")) {
    const boxes = [...plot.querySelectorAll("text")]
      .filter((t) => t.textContent.trim() && getComputedStyle(t).display !== "none"
                     && t.getAttribute("opacity") !== "0")
      .map((t) => [t.textContent.trim(), t.getBoundingClientRect()])
      .filter(([, r]) => r.width > 0 && r.height > 0);
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [a, p] = boxes[i], [b, q] = boxes[j];
        const dx = Math.min(p.right, q.right) - Math.max(p.left, q.left);
        const dy = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
        if (dx > 1 && dy > 1) overlaps.push(a + " | " + b);
      }
    }
  }
  // the short trial table (not the one under "All columns"): each header's edges, and the
  // right edge of what its scrolling box shows
  const short = [...document.querySelectorAll("table")].find((t) => !t.closest("details")
    && [...t.querySelectorAll("th")].some((th) => th.textContent.trim() === "validation loss"));
  const shown = short ? Math.min(document.documentElement.clientWidth,
                                 short.closest(".wide").getBoundingClientRect().right) : null;
  return {
    overlaps, width: document.documentElement.clientWidth, short_shown_right: shown,
    short_columns: short ? [...short.querySelectorAll("thead th")].map((th) => {
      const r = th.getBoundingClientRect();
      return [th.textContent.trim(), r.left, r.right];
    }) : [],
    cards: [...document.querySelectorAll("a")].map((a) => a.getAttribute("href"))
      .filter((h) => h && h.includes("-cards/")),
  };
}
window.addEventListener("load", () => setTimeout(() => {
  const plots = [...document.querySelectorAll(".js-plotly-plot")];
  const out = document.createElement("pre");
  out.id = "__check";
  out.textContent = JSON.stringify({
    errors: window.__errors, alerts: window.__alerts, plots: plots.length,
    rendered: plots.filter((p) => p.querySelectorAll(".main-svg .trace").length > 0).length,
    title: document.title, heading: document.querySelector("h1").textContent,
  });
  out.textContent = JSON.stringify(Object.assign(JSON.parse(out.textContent), layout()));
  document.body.appendChild(out);
}, 1000));
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed")
    return found


def open_in_chromium(report: Path, screenshot: Path) -> dict:
    """Load the report (with a checking script) in headless Chromium; what the page saw."""
    browser = chromium()
    checked = report.with_name(report.stem + "-checked.html")
    checked.write_text(report.read_text().replace("<head>", "<head>" + CHECK, 1))
    # tall enough for the whole page (the headline above the figures): no vertical scrollbar
    # takes from the 1280 px the width checks read
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--virtual-time-budget=20000", "--window-size=1280,6000",
    ]  # fmt: skip
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [browser, *flags, f"--screenshot={screenshot}", report.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    found = re.search(r'<pre id="__check">(.*?)</pre>', dom, re.S)
    assert found, "the checking script did not run: " + dom[-2000:]
    text = found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text.replace("&quot;", '"'))


@pytest.mark.slow
def test_the_report_renders_every_figure_without_errors_and_escapes_names(tmp_path):
    view = synthetic_view(HOSTILE, trial_suffix=HOSTILE)
    view.data["corpus"] = HOSTILE  # a file name, shown in the data line
    view.trials.loc[0, "error"] = HOSTILE  # shown under Errors
    report = write_report(tmp_path / "report.html", [view])
    page = report.read_text()
    assert HOSTILE not in page.split("<script", 1)[0]  # the title and heading are escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    seen = open_in_chromium(report, ARTIFACTS / "report.png")
    assert seen["errors"] == [] and seen["alerts"] == 0
    assert seen["plots"] == 4 and seen["rendered"] == 4  # size, compute, zero-shot, curves
    assert HOSTILE in seen["title"] and HOSTILE in seen["heading"]  # shown as text
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
    # At 1280 px: no two text labels of a figure overlap, every column of the short trial
    # table is on screen, and the card links open HTML pages.
    assert seen["width"] == 1280 and seen["overlaps"] == []
    columns = ["trial", "architecture", "N", "tokens", "FLOPs", "status", "validation loss",
               "MFU", "model card"]  # fmt: skip
    assert [name for name, _, _ in seen["short_columns"]] == columns
    for name, left, right in seen["short_columns"]:
        assert 0 <= left and right <= seen["short_shown_right"] <= seen["width"], name
    assert len(seen["cards"]) == 8 and all(link.endswith(".html") for link in seen["cards"])
    card = report.parent / seen["cards"][0]
    dom = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--dump-dom", card.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "<h1>decoder-25000-s0&lt;script&gt;" in dom and "<table>" in dom


@pytest.mark.slow
def test_two_studies_share_the_axes_one_colour_per_architecture(tmp_path):
    views = [synthetic_view("small"), synthetic_view("large", shift=-0.2)]
    report = write_report(tmp_path / "compare.html", views)
    page = report.read_text()
    for name in ("small: decoder trials", "large: decoder trials", "small: encoder"):
        assert name in page
    seen = open_in_chromium(report, ARTIFACTS / "compare.png")
    assert seen["errors"] == [] and seen["plots"] == seen["rendered"] == 3
    assert seen["overlaps"] == []
    style = r'"marker":\{"color":"(#[0-9a-f]{6})","size":9,"symbol":"(\w+)"\},"mode":"markers",'
    markers = re.findall(style + r'"name":"(small|large): (decoder|encoder) trials"', page)
    colour = {(study, arch): c for c, _, study, arch in markers}
    symbol = {(study, arch): m for _, m, study, arch in markers}
    assert colour[("small", "decoder")] == colour[("large", "decoder")]  # the architecture's
    assert colour[("small", "decoder")] != colour[("small", "encoder")]
    assert symbol[("small", "decoder")] != symbol[("large", "decoder")]  # the study's
    assert "tokenized differently" not in page  # both byte-level: nothing to say
    assert (tmp_path / "compare-cards" / "small" / "decoder-25000-s0.md").exists()
    assert (tmp_path / "compare-cards" / "small" / "decoder-25000-s0.html").exists()


def test_a_byte_level_and_a_bpe_study_are_compared_in_bits_per_byte(tmp_path):
    """Their losses per token do not compare: the report says so above the loss panels and
    draws them in bits per byte of validation text; the tables keep nats per token."""
    byte_level, bpe = synthetic_view("bytes"), synthetic_view("bpe", shift=1.0)
    byte_level.data |= {"tokens": {"validation": 71041}, "bytes": {"validation": 71017}}
    bpe.data |= {"tokenizer": "bpe:2048", "vocab_size": 2048,
                 "tokens": {"validation": 19210}, "bytes": {"validation": 71017}}  # fmt: skip
    page = write_report(tmp_path / "c.html", [byte_level, bpe]).read_text()
    caveat = page.split("<h2>Loss against size</h2>", 1)[1].split("<div", 1)[0]
    assert "tokenized differently (bytes: bytes, 359 tokens; bpe: bpe:2048, 2048 tokens)" in caveat
    assert (
        "drawn in bits per byte" in caveat and "tokens per byte: bytes 1.000, bpe 0.270" in caveat
    )

    def axis(unit: str) -> str:
        return f"causal LM loss ({unit})".replace("/", "\\u002f")  # as plotly's JSON has it

    assert axis("bits/byte") in page and axis("nats/token") not in page

    original = drawing_of(bpe)
    drawn = in_bits_per_byte(original)
    factor = 19210 / 71017 / np.log(2)
    assert drawn.loss_unit == "bits/byte" and original.loss_unit == "nats/token"
    assert np.allclose(drawn.finished.val_loss, original.finished.val_loss * factor)
    law, fit = drawn.laws["decoder"], bpe.fits.laws["decoder"]["n"]
    assert np.allclose(law.loss, fit.predict(N=law.n) * factor)
    assert np.allclose(law.low, fit.band(N=law.n)[0] * factor)
    assert law.E == fit.params["E"].estimate * factor
    assert law.alpha == fit.params["alpha"].estimate
    assert f"{bpe.trials.val_loss.iloc[0]:.4f}" in page  # the trial table, in nats per token

    other = synthetic_view("other")  # bpe:2048 as well, trained on other text
    other.data |= {"tokenizer": "bpe:2048", "vocab_size": 2048,
                   "tokens": {"validation": 30000}, "bytes": {"validation": 71017}}  # fmt: skip
    page = write_report(tmp_path / "e.html", [bpe, other]).read_text()
    assert "the tokenizers were trained on different text" in page
    assert "tokens per byte: bpe 0.270, other 0.422" in page

    unknown = synthetic_view("old")
    unknown.data["tokenizer"] = "bpe:2048"  # a store from before bytes were recorded
    page = write_report(tmp_path / "d.html", [byte_level, unknown]).read_text()
    assert "the panels stay in nats per token, as the stores of old predate" in page


def test_writing_a_report_leaves_the_views_it_was_given_as_they_were(tmp_path):
    """The report computes what it draws from copies: a comparison drawn in bits per byte
    changes neither the frames nor the fits of the studies it was given."""
    byte_level, bpe = synthetic_view("bytes"), synthetic_view("bpe", shift=1.0)
    byte_level.data |= {"tokens": {"validation": 71041}, "bytes": {"validation": 71017}}
    bpe.data |= {"tokenizer": "bpe:2048", "vocab_size": 2048,
                 "tokens": {"validation": 19210}, "bytes": {"validation": 71017}}  # fmt: skip
    bpe.predictions = pd.DataFrame(
        [["decoder", 3e12, 1e6, 5e5, 2.1, 2.0, 2.2, 2.15, 0.02, "decoder-1000000-s0"]],
        columns=["architecture", "flops", "n_params", "tokens", "predicted_loss", "ci_low",
                 "ci_high", "measured_loss", "error", "trial_id"],
    ).assign(n_opt=1e6, n_opt_from="nd")  # fmt: skip
    studies = (byte_level, bpe)
    frames = ["trials", "metrics", "evals", "predictions", "task_points"]

    def others(view):  # every field but the frames and the fitted objects
        return {k: x for k, x in vars(view).items() if k not in frames + ["fits"]}

    before = [{name: getattr(v, name).copy(deep=True) for name in frames} for v in studies]
    laws = [{a: dict(fits) for a, fits in v.fits.laws.items()} for v in studies]
    alphas = [v.fits.laws["decoder"]["n"].params["alpha"].estimate for v in studies]
    rest = [copy.deepcopy(others(v)) for v in studies]
    write_report(tmp_path / "c.html", list(studies))
    for view, frames_before, laws_before, alpha, others_before in zip(
        studies, before, laws, alphas, rest, strict=True
    ):
        for name, frame in frames_before.items():
            pd.testing.assert_frame_equal(getattr(view, name), frame, obj=name)
        assert {a: dict(fits) for a, fits in view.fits.laws.items()} == laws_before
        assert view.fits.laws["decoder"]["n"].params["alpha"].estimate == alpha
        assert others(view) == others_before  # the card links are not written into it


def test_every_finished_trial_has_a_linked_model_card_in_markdown_and_html(tmp_path):
    view = synthetic_view("cards")
    spec = TrialSpec(
        study="cards", trial_id="decoder-1000000-s0", size="1M", seed=0,
        model=Model("decoder", n_layer=4, n_embd=128, n_head=4),
        data=Data("builtin:kjv", "bytes", seq_len=128, val_fraction=0.02,
                  heldout_fraction=0.02, split_seed=0),
        optim=Optim(batch_size=16, lr=3e-3, min_lr_ratio=0.1, warmup=0.05, weight_decay=0.1,
                    grad_clip=1.0, beta1=0.9, beta2=0.95),
        budget=Budget(tokens=500_000), eval=Eval(every_tokens=100_000, tokens=20_000),
    )  # fmt: skip
    view.configs = {spec.trial_id: spec.to_dict()}
    report = write_report(tmp_path / "r.html", [view])
    card = (tmp_path / "r-cards" / "decoder-1000000-s0.md").read_text()
    page = (tmp_path / "r-cards" / "decoder-1000000-s0.html").read_text()
    assert '<a href="r-cards/decoder-1000000-s0.html">card</a>' in report.read_text()
    shape = [
        ("shape", "4 layers, width 128, 4 heads"),
        ("sequence length", "128 tokens"),
        ("steps", "245 of 16 sequences (2,048 tokens)"),  # 500K tokens: 244.1 steps
        ("learning rate", "linear warmup over 12 steps to 0.003, then cosine decay to 0.0003 "
                          "at the last step"),
        ("optimizer", "AdamW (β1 0.9, β2 0.95), weight decay 0.1, gradients clipped at 1.0"),
        ("parameters (non-embedding, N)", "1,000,000"),
        ("corpus", "builtin:kjv"),
        ("tokens seen", "500K of a budget of 500K"),
        ("training compute", "3e+12 FLOPs"),
    ]  # fmt: skip
    for name, value in shape:  # the same content in both
        assert f"| {name} | {value} |" in card, name
        assert f"<th>{name}</th><td>{value}</td>" in page, name
    for text in ("GPT-style decoder-only", "causal language modelling", "| last_word | acc |",
                 "## Intended use and limitations"):  # fmt: skip
        assert text in card, text
    assert "<h2>Intended use and limitations</h2>" in page and "<strong>" in page
    assert (
        "| steps |" not in (tmp_path / "r-cards" / "decoder-25000-s0.md").read_text()
    )  # no config
    assert len(list((tmp_path / "r-cards").glob("*.md"))) == 8
    assert len(list((tmp_path / "r-cards").glob("*.html"))) == 8


@pytest.fixture(scope="module")
def warned_view() -> StudyView:
    """A study with two-step fits of two tasks: one on eight runs, whose first step leaves E at
    its bound, and one on too few runs, not made."""
    from analysis.tasklaw import study_task_fits
    from tests.test_tasklaw import ladder

    runs = ladder()
    runs = runs[(runs.N < 1.5e9) & runs.run.str.endswith(("-1xC", "-10xC"))]
    points = pd.concat(
        [runs.assign(task="last_word"), runs[runs.N < 5e8].assign(task="minimal_pairs")]
    )
    view = synthetic_view("warned")
    view.task_points = points.assign(
        architecture="decoder", chance=0.25, ci_low=np.nan, ci_high=np.nan
    )
    view.fits = replace(view.fits, tasks=study_task_fits(view.task_points, n_boot=20))
    return view


TASK_WARNINGS = [
    "decoder last_word two-step: log_E = -10 sits at its bound",
    "decoder minimal_pairs: two-step fit not made (the two-step fit needs 6 runs",
]


def test_the_summary_states_every_warning_of_the_fits_the_two_step_ones_included(
    tmp_path, warned_view
):
    page = write_report(tmp_path / "r.html", [warned_view]).read_text()
    summary = page.split('<section class="summary">', 1)[1].split("</section>", 1)[0]
    warnings = summary.split('<h3 class="warn">', 1)[1]
    for warning in TASK_WARNINGS:
        assert f"<li>{warning}" in warnings, warning


def test_study_run_report_and_fit_print_the_two_step_fits_warnings(
    tmp_path, monkeypatch, warned_view
):
    from sqlalchemy.orm import Session
    from typer.testing import CliRunner

    from orchestrator import api, fitting
    from orchestrator.cli import app
    from orchestrator.run import RunResult
    from orchestrator.store import open_store
    from tests.test_store import _registered

    fitted = warned_view.fits
    ran = RunResult("warned", "", tmp_path / "r.html", fits=fitted)
    monkeypatch.setattr(api, "run_study", lambda *args, **kwargs: ran)
    run = CliRunner().invoke(app, ["run", "warned.yaml"])
    url = f"sqlite:///{tmp_path / 'st.db'}"
    with Session(open_store(url)) as session:
        _registered(session)
        session.commit()
    monkeypatch.setattr(fitting, "fit_and_store", lambda *args: warned_view)
    report = CliRunner().invoke(app, ["report", "--store", url, "--out", str(tmp_path / "s.html")])
    stored = {"study": "warned", "law": "task", "architectures": fitted.tasks}
    monkeypatch.setattr(fitting, "fit_stored", lambda *args: stored)
    fit = CliRunner().invoke(app, ["fit", "--store", url, "--law", "task"])
    for shown in (report, fit):
        assert shown.exit_code == 0, shown.output
        for warning in TASK_WARNINGS[: 2 if shown is not fit else 1]:  # fit says why on stdout
            assert f"warning: {warning}" in shown.stderr, warning
    assert run.exit_code == 0, run.output  # the run says them under its caveats, grouped
    assert ("  decoder: the two-step fit's step 1 (task loss from N and D) warned on last_word "
            "(such as parameters at their bounds") in run.stderr  # fmt: skip
    assert "log_E = -10 sits at its bound" not in run.stderr  # that is in the report
    assert ("  note: the two-step accuracy fit is not made for decoder: it holds out the largest "
            "size to test itself, and needs 6 runs besides; 2 are left") in run.stderr  # fmt: skip
    assert "minimal_pairs: two-step fit not made" in fit.stdout


def test_an_isoflop_grid_with_a_learning_rate_sweep_draws_both_and_renders(tmp_path):
    """Chinchilla's law on an IsoFLOP grid, each cell at three learning rates: the report draws
    the IsoFLOP curves with their minima and the loss against learning rate."""
    rows = []
    for c in (3e16, 1e17, 3e17, 1e18):
        for n in (1e7, 2e7, 5e7, 1e8, 2e8):
            d = c / (6 * n)
            for lr in (1e-3, 2e-3, 4e-3):
                loss = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28 + 0.02 * abs(np.log(lr / 2e-3))
                row = dict.fromkeys(TRIAL_COLUMNS)
                row |= {"trial_id": f"decoder-{n:g}-{c:g}F-lr{lr:g}-s0", "architecture": "decoder",
                        "size": f"{n:g}", "seed": 0, "n_params": n, "tokens": d, "flops": c,
                        "lr": lr, "status": "finished", "val_loss": loss, "attempts": 1,
                        "hash": f"{n}{c}{lr}"}  # fmt: skip
                rows.append(row)
    trials = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    fits = fit_study(trials, n_boot=50)
    assert isinstance(fits["decoder"]["isoflop"], IsoFlopFit)  # the minima lie inside the sizes
    assert all(not e["at_edge"] for e in fits["decoder"]["isoflop"].envelope)
    metrics = pd.DataFrame(columns=["trial_id", "step", "tokens", "name", "value"])
    view = StudyView("iso", trials, metrics, StudyFits(fits))
    # one prediction measured (outside its interval), one whose model has not trained yet
    view.predictions = pd.DataFrame(
        [["decoder", 3e18, 3e8, 1.7e9, 2.51, 2.49, 2.53, 2.56, 0.0199, "decoder-3e8-3e18F-s0"],
         ["decoder", 1e19, 5e8, 3.3e9, 2.42, 2.40, 2.45, None, None, "decoder-5e8-1e19F-s0"]],
        columns=["architecture", "flops", "n_params", "tokens", "predicted_loss", "ci_low",
                 "ci_high", "measured_loss", "error", "trial_id"],
    ).assign(n_opt=[3.1e8, 5.2e8], n_opt_from="isoflop")  # fmt: skip
    report = write_report(tmp_path / "iso.html", [view])
    page = report.read_text()
    assert "<h2>IsoFLOP</h2>" in page and "<h2>Learning rate</h2>" in page
    assert "<h2>Predictions</h2>" in page and "not trained yet" in page and "+1.99%" in page
    assert "measured 2.56, error +1.99%" in page  # in the summary
    seen = open_in_chromium(report, ARTIFACTS / "report-isoflop.png")
    # size, compute, IsoFLOP, lr, predictions, curves
    assert seen["errors"] == [] and seen["plots"] == 6 and seen["overlaps"] == []
    assert seen["rendered"] == 5  # all but the training curves: none are stored here


@pytest.mark.slow
def test_the_two_step_accuracy_fit_draws_a_panel_per_task_and_renders(tmp_path):
    """A synthetic ladder of one task as a study's scored checkpoints: the report draws
    accuracy against task loss with the sigmoid and the held-out largest model, and says in its
    summary what it predicted and measured."""
    from analysis.tasklaw import study_task_fits
    from tests.test_tasklaw import ladder

    points = ladder().assign(architecture="decoder", task="last_word", chance=0.25,
                             ci_low=np.nan, ci_high=np.nan)  # fmt: skip
    view = synthetic_view("tasks")
    tasks = study_task_fits(points, n_boot=100)
    assert isinstance(tasks["decoder"].tasks["last_word"], TaskFit)
    view.task_points, view.fits = points, replace(view.fits, tasks=tasks)
    report = write_report(tmp_path / "tasks.html", [view])
    page = report.read_text()
    assert "<h2>Accuracy from task loss</h2>" in page
    assert "decoder last_word: the largest run 2e+09-10xC held out and predicted" in page
    seen = open_in_chromium(report, ARTIFACTS / "report-tasks.png")
    assert seen["errors"] == [] and seen["plots"] == seen["rendered"] == 5  # and the task panel
    assert seen["overlaps"] == []
