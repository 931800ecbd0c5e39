"""`make demo` from a fresh clone, as a new user runs it (slow; `.ci/run` runs it after the default suite): the whole
toy chain ends green within its budgets (stages 15 minutes of wall time, no process above 4 GiB) with the results
table, every number of which is the value in the metrics.json it names, the probes' and the transfer's columns
for every initialisation, the reconstruction figures, and the toy's goals where docs/results.md shows seed 0
meeting them: both pretrained encoders at least 10 points above random weights in the object probes' kNN and
linear top-1 and in the dense probe's mIoU; in linear probing ASL +10 and MAE +5 over random weights; in
fine-tuning ASL +5; in UperNet ASL +2 over random weights and +5 over background everywhere; in Mask R-CNN box
AP >= 5 for every initialisation (the detector visibly learns, whichever is ahead)."""
import json
import os
import resource
import subprocess

import pytest

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGE_KEYS = {"LP top-1": ("linprobe", "top1"), "FT top-1": ("finetune", "top1"), "box AP": ("detection", "box_AP"),
              "mask AP": ("detection", "mask_AP"), "mIoU": ("segmentation", "mIoU"),
              "kNN top-1": ("probe", "knn_top1"), "linear top-1": ("probe", "linear_top1"),
              "dense mIoU": ("probe", "dense_mIoU")}


def test_make_demo_from_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", REPO, str(clone)], check=True)
    # The clone shares this checkout's environment, which `make test` has installed from the same install script
    # (.ci/run runs it first): `make demo`'s install step then finds it up to date instead of spending minutes on a
    # second copy that tests nothing new. The tools put their own checkout first on sys.path, so the clone's code runs.
    if os.path.isdir(os.path.join(REPO, ".venv")):  # else the clone's `make demo` installs its own
        os.symlink(os.path.join(REPO, ".venv"), clone / ".venv")
    env = dict(os.environ, ASL_DATASETS=str(tmp_path / "datasets"))
    env.pop("VIRTUAL_ENV", None)
    run = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    check_demo(clone / "work_dirs" / "pipeline" / "toy", run.stdout, peak_gib)


def check_demo(work, stdout: str, peak_gib: float):
    """Every promise of the demo on its pipeline directory `work` (also usable on a demo run elsewhere)."""
    times = json.loads((work / "stage_times.json").read_text())
    wall = json.loads((work / "timeline.json").read_text())["wall_s"]
    print(f"stage times (s, steps summed): {times}; stages took {wall:.0f} s of wall time; largest process "
          f"{peak_gib:.2f} GiB")
    assert wall <= 15 * 60 and peak_gib <= 4.0

    results = json.loads((work / "results" / "results.json").read_text())
    table = results["rows"]
    assert 10 < results["chance"]["mIoU"] < 40 and results["chance"]["box AP"] == 0
    # the majority class: of the objects for the object probes, of the dominant-object crops for LP and FT
    assert results["chance"]["kNN top-1"] == results["chance"]["linear top-1"] < results["chance"]["LP top-1"]
    assert results["chance"]["LP top-1"] == results["chance"]["FT top-1"]
    assert any(line.startswith("pretraining: ") for line in results["budgets"])
    assert set(table) == {"asl", "mae", "random"}
    for method, row in table.items():
        assert set(row) == set(STAGE_KEYS), method
        for label, cell in row.items():
            stage, key = STAGE_KEYS[label]
            source = json.loads(open(cell["source"]).read())
            assert os.path.realpath(cell["source"]) == os.path.realpath(work / stage / method / "metrics.json")
            assert source["init"]["method"] == method and cell["value"] == source["metrics"][key]
    value = {method: {label: cell["value"] for label, cell in row.items()} for method, row in table.items()}
    random = value["random"]
    for method in ("asl", "mae"):
        gains = {label: round(value[method][label] - random[label], 1) for label in random}
        assert gains["linear top-1"] >= 10 and gains["kNN top-1"] >= 10 and gains["dense mIoU"] >= 10, (method, gains)
        assert gains["LP top-1"] >= (10 if method == "asl" else 5), (method, gains)
    assert value["asl"]["FT top-1"] >= random["FT top-1"] + 5, (value["asl"], random)
    assert value["asl"]["mIoU"] >= max(random["mIoU"] + 2, results["chance"]["mIoU"] + 5), (value["asl"], random)
    assert all(row["box AP"] >= 5 for row in value.values()), value
    markdown = (work / "results" / "results.md").read_text()
    mae = table["mae"]
    assert f"| mae | {mae['kNN top-1']['value']:.1f} | {mae['linear top-1']['value']:.1f} |" in markdown
    assert markdown in stdout
    for path in ["results/results.png", "figures/asl/reconstructions.png", "figures/mae/reconstructions.png",
                 "figures/asl/loss_curves.png"]:
        assert (work / path).stat().st_size > 10_000, path
