"""The cases of a new user's first week (issue 16): each quoted command gives a one-paragraph
message with what to do next and a non-zero exit, or does the right thing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metazoo.bench.suite import load_suite
from metazoo.cli.main import main
from metazoo.runs import resolve_run


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") <= 2, err
    return err


@pytest.mark.parametrize(
    "pair,value",
    [("lr=1e-3", 1e-3), ("lr=3E-4", 3e-4), ("inner_lr=1e9", 1e9), ("steps=1_000", 1000)],
)
def test_numbers_as_people_type_them(pair, value):
    learner = "protonet" if pair.startswith("lr") else "maml"
    run = resolve_run(
        learner, "omniglot-5w1s" if learner == "protonet" else "sinusoid", overrides=[pair]
    )
    learner, train = run.section("config"), run.section("train")
    assert {**learner, **train} == {pair.split("=")[0]: value}
    assert type({**learner, **train}[pair.split("=")[0]]) is type(value)


def test_sampler_backbone_and_config_file_settings(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "train: {lr: 1e-3, steps: 20}\nsampler: {queries: 5}\nbuild: {backbone: conv4}\n"
    )
    run = resolve_run(
        "protonet",
        "omniglot-5w1s",
        config_file=str(config),
        overrides=["ways=3", "hidden=16", "steps=30"],
    )
    assert run.section("sampler") == {"queries": 5, "ways": 3}
    assert run.section("train") == {"lr": 1e-3, "steps": 30}  # the command line wins key by key
    assert run.section("build") == {"backbone": "conv4", "backbone_options": {"hidden": 16}}
    assert run.sources()["train"]["steps"] == "command line"
    assert run.sources()["train"]["lr"] == f"config file {config}"
    with pytest.raises(TypeError, match=r"^ways='many': expected int, got str$"):
        resolve_run("protonet", "omniglot-5w1s", overrides=["ways=many"])


def test_suite_train_block_is_typed_and_bad_yaml_names_file_line_column(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("learners: [maml]\nbenchmarks: [sinusoid]\ntrain: {lr: 1e-3}\n")
    assert load_suite(suite).defaults["train"] == {"lr": 1e-3}
    suite.write_text("learners: [maml]\nbenchmarks: [sinusoid]\ntrain: {lr: fast}\n")
    with pytest.raises(TypeError, match=r"s\.yaml\.train: lr='fast': expected float, got str$"):
        load_suite(suite)
    suite.write_text("name: [broken\n")
    with pytest.raises(ValueError) as info:
        load_suite(suite)
    assert str(info.value).startswith(f"{suite}:2:1: malformed YAML: ")
    assert str(info.value).endswith("; fix the YAML there")


def test_help_lists_the_keys_of_the_learner_training_sampler_and_backbone(capsys):
    assert main(["train", "protonet", "omniglot-5w1s", "--help"]) == 0
    out = capsys.readouterr().out
    for line in ("learner 'protonet' keys:", "  lr: float = 0.001 (default)  # outer learning rate\n",
                 "  meta_batch: int | None = 32 (benchmark card omniglot-5w1s)  # tasks per meta-update",
                 "  ways: int = 5 (benchmark card omniglot-5w1s)  # N, classes per task\n",
                 "backbone 'conv4' keys:", "  hidden: int = 64 (default)  # filters per block",
                 "--seed SEED", "--config CONFIG", "--print-config"):  # fmt: skip
        assert line in out, line
    keys = out.partition("keys of protonet")[2]
    for fact in ("device", "checkpoint_dir", "resume", "overwrite"):  # flags, not keys
        assert f"  {fact}:" not in keys, fact


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "maml", "sinusid"], "unknown benchmark 'sinusid'; did you mean 'sinusoid'? "),
        (["train", "mann", "omniglot-5w1s", "--backbone", "resnet99"],
         "--backbone resnet99: learner 'mann' has no backbone (it builds its own network); drop --backbone"),
        (["eval", "runs/doesnotexist"], "give the folder `metazoo train --out` wrote (holding best.pt or last.pt)"),
    ],
)  # fmt: skip
def test_mistakes_get_a_message_with_the_fix(argv, message, capsys):
    assert main(argv) == 2
    assert message in _error(capsys)


def test_a_used_run_folder_is_refused_and_resume_needs_a_run(tmp_path, capsys):
    (tmp_path / "last.pt").write_bytes(b"x")
    (tmp_path / "result.json").write_text("{}")
    assert main(["train", "maml", "sinusoid", "--out", str(tmp_path)]) == 2
    assert _error(capsys) == (
        f"metazoo train: error: --out {tmp_path} already holds a run (last.pt, result.json); add "
        "--resume to continue it, --overwrite to delete it and start over, or give another --out "
        "folder\n"
    )
    assert (tmp_path / "last.pt").read_bytes() == b"x"  # untouched
    empty = tmp_path / "empty"
    assert main(["train", "maml", "sinusoid", "--resume", "--out", str(empty)]) == 2
    assert f"--resume: {empty} holds no last.pt to resume from; drop --resume" in _error(capsys)


@pytest.mark.parametrize(
    "learner,setting,rate,advice",
    [
        ("maml", "inner_lr=1.0e+6", "inner", "lower inner_lr (now 1000000.0)"),
        ("maml", "lr=1.0e+8", "outer", "lower lr (now 100000000.0) or set grad_clip"),
        ("cnp", "lr=1.0e+8", "outer", "lower lr (now 100000000.0) or set grad_clip"),
    ],
)
def test_divergence_names_step_tasks_rate_and_checkpoint(
    learner, setting, rate, advice, tmp_path, capsys
):
    argv = ["train", learner, "sinusoid", "steps=50", "meta_batch=4", setting, "--quiet",
            "--out", str(tmp_path / "run"), "--threads", "1"]  # fmt: skip
    assert main(argv) == 2
    err = _error(capsys)
    assert err.startswith("metazoo train: error: the meta-loss is ")
    assert f"Likely cause: the {rate} learning rate, as " in err and advice in err
    assert "training episodes " in err and "checkpoint" in err.lower()


@pytest.mark.slow  # a training process, interrupted; the fast sibling: the SIGTERM test below
def test_ctrl_c_writes_a_checkpoint_and_prints_the_resume_command(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "maml", "sinusoid", "steps=100000", "meta_batch=2", "val_every=0",
            "log_every=1", "--out", str(out), "--threads", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "metazoo", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    for line in proc.stdout:  # the plain progress log: wait until training runs
        if line.startswith("  step "):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    from metazoo.training import load_checkpoint

    step = load_checkpoint(out / "last.pt")["step"]
    assert step >= 1
    expected = (
        f"metazoo train: SIGINT at step {step} of 100000; saved {out / 'last.pt'}. Resume with:\n"
    )
    assert err.startswith(expected), err
    assert err.endswith(f"  metazoo {' '.join(argv)} --resume\n")


def test_sigterm_stops_python_training_at_a_checkpoint(tmp_path):
    from metazoo.build import build_learner
    from metazoo.training import TrainConfig, TrainingInterrupted, load_checkpoint, train

    learner = build_learner("maml", "sinusoid", inner_steps=1)
    config = TrainConfig(steps=50, meta_batch=2, val_every=0, checkpoint_dir=str(tmp_path))

    def stop_at_step_3(event):
        if event.get("step") == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    started = time.perf_counter()
    with pytest.raises(TrainingInterrupted) as info:
        train(learner, "sinusoid", config, callback=stop_at_step_3)
    assert (info.value.step, info.value.signal_name) == (3, "SIGTERM")
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers put back
    assert time.perf_counter() - started < 60


def test_python_train_prints_progress_unless_quiet(capsys):
    from metazoo.build import build_learner
    from metazoo.training import TrainConfig, train

    config = TrainConfig(steps=2, meta_batch=2, val_every=0, log_every=1)
    train(build_learner("maml", "sinusoid", inner_steps=1), "sinusoid", config)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["step 1/2", "step 2/2"]
    assert lines[0].split("  ")[1].startswith("loss ")
    train(build_learner("maml", "sinusoid", inner_steps=1), "sinusoid", config, quiet=True)
    assert capsys.readouterr().err == ""


def test_written_files_get_the_umask_mode(tmp_path):
    from metazoo._atomic import write_json_atomic

    old = os.umask(0o022)
    try:
        path = write_json_atomic({"a": 1}, tmp_path / "result.json")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in Path(tmp_path).iterdir()] == ["result.json"]


def test_ls_never_cuts_names_when_piped():
    from metazoo.cards import list_benchmark_cards

    run = subprocess.run([sys.executable, "-m", "metazoo", "ls"], capture_output=True, text=True)
    assert run.returncode == 0 and "…" not in run.stdout
    assert all(f"│ {name} " in run.stdout for name in list_benchmark_cards())


def test_omniglot_cache_key_follows_every_files_size_and_mtime(tmp_path):
    from metazoo.data.cache import content_key, file_stamps

    image = tmp_path / "a.png"
    image.write_bytes(b"12345")
    before = content_key(file_stamps([str(image)], ["a.png"]))
    os.utime(image, ns=(1, 1))  # an edited copy: another modification time
    assert content_key(file_stamps([str(image)], ["a.png"])) != before
    stamp = file_stamps([str(image)], ["a.png"])
    image.write_bytes(b"123")  # truncated (corrupted), same mtime
    os.utime(image, ns=(1, 1))
    assert file_stamps([str(image)], ["a.png"]) != stamp


def test_offline_download_leaves_nothing_and_says_what_to_do(tmp_path):
    from metazoo.data.omniglot import DownloadError, download

    root = tmp_path / "data"
    with pytest.raises(DownloadError) as info:  # port 9 refuses: the same as being offline
        download(root, url_prefix="http://127.0.0.1:9")
    assert str(info.value).startswith("cannot download http://127.0.0.1:9/images_background.zip (")
    assert "Without network, copy images_background.zip and images_evaluation.zip" in str(
        info.value
    )
    assert not root.exists()  # no empty folder, no temporary file
    (root / "omniglot-py").mkdir(parents=True)
    (root / "omniglot-py" / "images_background.zip").write_bytes(b"not a zip")
    env = {**os.environ, "METAZOO_DATA": str(root)}
    run = subprocess.run([sys.executable, "-m", "metazoo.data", "download", "omniglot"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("python -m metazoo.data download: error: ")
    assert "images_background.zip is already there but its md5 " in run.stderr
    assert "delete it and run the command again" in run.stderr
    assert sorted(p.name for p in (root / "omniglot-py").iterdir()) == ["images_background.zip"]
