"""Every contender computes the same MAML step; the runner survives a broken one."""

from __future__ import annotations

import json

import pytest
import torch

from lab.docs.generate import update_speed_docs
from lab.speed.contenders import CONTENDERS, Unavailable, build_contender
from lab.speed.report import render_markdown, result_stem, write_result
from lab.speed.runner import SpeedConfig, reference_gradient, relative_error, run_speed
from lab.speed.shapes import SpeedShape, make_model, synthetic_batches

TINY = SpeedShape("tiny", 3, 1, 2, (1, 16, 16), 4, 3, 2, 2, 0.3)


@pytest.fixture(scope="module")
def setup():
    return make_model(TINY), synthetic_batches(TINY, 2)


def _norm(tensors) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors]).norm()


def _available(setup):
    model, batches = setup
    built = {}
    for name in CONTENDERS:
        try:
            built[name] = build_contender(name, model, TINY, batches[0])
        except Unavailable:
            continue
    return built


@pytest.mark.slow
def test_every_contender_takes_the_same_meta_training_step(setup):
    model, batches = setup
    contenders = _available(setup)
    assert {"higher", "torch-loop", "metazoo-sequential", "metazoo-auto"} <= set(contenders)
    reference = reference_gradient(model, TINY, batches[0])
    # Adam's first step is lr * sign(g): compare the parameters with a real meta-gradient (a conv
    # bias before BatchNorm has an exactly zero one, whose sign is rounding noise)
    live = [i for i, g in enumerate(reference) if g.norm() > 1e-6 * _norm(reference)]
    assert len(live) >= 10
    moved = {}
    for name, contender in contenders.items():
        assert relative_error(contender.meta_gradient(batches[0]), reference) < 1e-5, name
        contender.train_step(batches[0])
        params = list(contender.model.parameters())
        moved[name] = torch.cat([params[i].detach().flatten() for i in live])
    start = torch.cat([list(model.parameters())[i].detach().flatten() for i in live])
    expected = moved["torch-loop"]
    signs = torch.cat([reference[i].float().flatten().sign() for i in live])
    torch.testing.assert_close(expected - start, -TINY.outer_lr * signs, rtol=0, atol=1e-6)
    for name, weights in moved.items():
        torch.testing.assert_close(weights, expected, rtol=0, atol=1e-6, msg=name)


def test_every_contender_evaluates_to_the_same_accuracy(setup):
    model, batches = setup
    contenders = _available(setup)
    accuracies = {name: c.evaluate(batches[1]) for name, c in contenders.items()}
    first = next(iter(accuracies.values()))
    for name, accuracy in accuracies.items():
        assert accuracy.shape == (TINY.meta_batch,)
        torch.testing.assert_close(accuracy, first, msg=name)


def test_cuda_variants_are_skipped_on_the_cpu(setup):
    model, batches = setup
    with pytest.raises(Unavailable, match="CUDA-only variant"):
        build_contender("metazoo-vectorized+graph", model, TINY, batches[0])
    with pytest.raises(KeyError, match="unknown contender 'nope'"):
        build_contender("nope", model, TINY, batches[0])


def _broken(model, shape, example):
    from lab.speed.contenders import Contender

    def explode(batch):
        raise RuntimeError("this implementation is broken")

    return Contender("broken", "raises", explode, explode, None)


@pytest.fixture(scope="module")
def tiny_run():
    config = SpeedConfig(
        shapes=[TINY],
        contenders=["torch-loop", "broken", "learn2learn", "metazoo-auto+bf16", "metazoo-auto"],
        extra_contenders={"broken": _broken},
        warmup=2,
        repeats=2,
        min_run_s=0.0,
    )
    return run_speed(config, log=lambda line: None)


def test_run_speed_reports_progress_after_each_check_and_round():
    snapshots = []  # as a file written at each report would hold them
    config = SpeedConfig(
        shapes=[TINY], contenders=["torch-loop", "metazoo-auto"], warmup=2, repeats=2, min_run_s=0
    )
    final = run_speed(
        config, log=lambda line: None, progress=lambda d: snapshots.append(json.dumps(d))
    )
    seen = [json.loads(s) for s in snapshots]
    assert all(d["partial"] for d in seen) and "partial" not in final
    first, second = (d["shapes"][0]["contenders"] for d in seen[:2])
    assert [r["name"] for r in first] == ["torch-loop"] and "train" not in first[0]
    assert first[0]["meta_grad_rel_error"] < 1e-3  # checked, not yet timed
    assert [r["name"] for r in second] == ["torch-loop", "metazoo-auto"]
    assert len(seen) == 2 + 2 * 2  # two checks, then two train and two eval rounds
    after_first_round = seen[2]["shapes"][0]["contenders"]
    assert all(r["train"]["per_s"] > 0 and "eval" not in r for r in after_first_round)
    whole = json.loads(json.dumps(final["shapes"]))
    assert seen[-1]["shapes"] == whole  # the last report is the whole result


def test_run_speed_records_failures_and_goes_on(tiny_run, tmp_path):
    document = tiny_run
    records = {r["name"]: r for r in document["shapes"][0]["contenders"]}
    assert records["broken"]["status"] == "failed"
    assert records["broken"]["note"] == "RuntimeError: this implementation is broken"
    assert records["metazoo-auto+bf16"] == {
        "name": "metazoo-auto+bf16",
        "precision": "bf16",
        "status": "skipped",
        "note": "CUDA-only variant",
    }
    for name in ("torch-loop", "metazoo-auto"):
        assert records[name]["status"] == "ok"
        assert records[name]["meta_grad_rel_error"] < 1e-5
        assert len(records[name]["train"]["seconds_per_call"]) == 2
        assert records[name]["train"]["per_s"] > 0 and records[name]["eval"]["per_s"] > 0
    assert records["torch-loop"]["eval_accuracy"] == records["metazoo-auto"]["eval_accuracy"]
    targets = {t["target"].split(":")[0]: t for t in document["targets"]}
    assert targets["2 CPU cores"]["detail"].startswith("tiny: ")
    json_path, md_path = write_result(document, tmp_path)
    assert json_path.name == f"{result_stem(document)}.json"
    assert json.loads(json_path.read_text())["shapes"][0]["shape"]["name"] == "tiny"
    table = md_path.read_text()
    assert (
        "| `broken` | fp32 | – | – | – | – | – | – | failed: RuntimeError: this implementation is broken |"
        in table
    )
    assert table == render_markdown(document)


def test_unknown_contender_names_fail_before_any_work():
    with pytest.raises(KeyError, match=r"unknown contender\(s\) \['nope'\]"):
        run_speed(SpeedConfig(shapes=[TINY], contenders=["nope"]))


def test_speed_docs_are_generated_from_full_result_files(tiny_run, tmp_path):
    quick = {**tiny_run, "mode": "quick"}
    write_result(quick, tmp_path)
    page = tmp_path / "speed.md"
    markers = "<!-- metazoo:speed-summary -->\nstale\n<!-- /metazoo:speed-summary -->\n"
    page.write_text("# Speed\n" + markers + markers.replace("summary", "targets"))
    assert not update_speed_docs(page, tmp_path / "results")
    assert page.read_text().count("No full speed run is committed yet.") == 2  # quick runs ignored
    write_result({**tiny_run, "mode": "full"}, tmp_path)
    update_speed_docs(page, tmp_path / "results")
    text = page.read_text()
    loop = next(r for r in tiny_run["shapes"][0]["contenders"] if r["name"] == "torch-loop")
    assert f"| tiny | `torch-loop` | {loop['train']['per_s']:,.1f} | 1.00 |" in text
    assert "2 CPU cores: metazoo-auto never slower than the task loop" in text
    assert update_speed_docs(page, tmp_path / "results", check=True)


def test_train_overrides_set_up_the_contenders_own_step():
    from lab.speed.contenders import (
        CONTENDERS,
        CUDA_VARIANTS,
        precision_of,
        train_overrides,
    )
    from metazoo.engine.fast import FAST_STEP_OPTIONS
    from metazoo.training import TrainConfig
    from metazoo.training.config import with_moved_settings

    assert train_overrides("torch-loop+graph") is None  # a forced executor and graph
    assert train_overrides("metazoo-auto+bf16") is None  # autocast: not a training setting
    assert train_overrides("higher") is None
    # 3xTF32 products are not a training setting; the name alone sets them
    three = "metazoo-compiled+channels-last+triton-conv+3xtf32"
    assert train_overrides(three) is None and precision_of(three) == "3xtf32"
    assert CUDA_VARIANTS[three].options.triton_fp32_products == "tf32x3"
    assert CUDA_VARIANTS[three.removesuffix("+3xtf32")].options.triton_fp32_products == "ieee"
    trainable = 0
    for name, builder in {**CONTENDERS, **CUDA_VARIANTS}.items():
        overrides = train_overrides(name)
        if overrides is None:
            continue
        trainable += 1
        values = {k: v == "true" for k, v in (o.split("=") for o in overrides)}
        with pytest.warns(FutureWarning, match="option of the opt-in fast step"):
            settings = with_moved_settings({"fast_step": True, **values}, "the lab")
        config = TrainConfig(**settings)
        chosen = {k: getattr(config.fast, k) for k in FAST_STEP_OPTIONS}
        chosen["channels_last"] = config.channels_last  # a setting of every learner's training
        assert chosen == {k: getattr(builder.options, k) for k in FAST_STEP_OPTIONS}, name
        assert (config.tf32 is True) == name.endswith("+tf32"), name
    assert trainable >= 5
