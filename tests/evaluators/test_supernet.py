"""Supernet training (sandwich rule, checkpoints, resume) and subnet evaluation."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from evaluators import export_onnx, get_backend
from evaluators.backends import BackendOptions
from evaluators.data import Dataset, load_dataset
from evaluators.errors import CheckpointError, SettingsError
from evaluators.supernet import (
    SubnetEvalSettings,
    SubnetEvaluator,
    SupernetSettings,
    follow_permutations,
    load_supernet,
    read_checkpoint,
    train_supernet,
)
from evaluators.training import training_layout
from search_spaces import Architecture, Categorical, InputSpec
from search_spaces.elastic import DynamicLinear, ElasticSpace, Supernet
from tests.conftest import ROOT
from tests.elastic_fixtures import one_thread, tiny_space

_one_thread = pytest.fixture(autouse=True)(one_thread)

SETTINGS = SupernetSettings(steps=24, batch_size=32, checkpoint_every=4, log_every=4,
                            random_subnets=1, learning_rate=5e-3)

TRAIN_SCRIPT = """
import sys
from dataclasses import replace
from pathlib import Path
import torch
torch.set_num_threads(1)
from evaluators.data import load_dataset
from evaluators.supernet import train_supernet
from tests.evaluators.test_supernet import SETTINGS
from tests.elastic_fixtures import tiny_space
train_supernet(tiny_space(), load_dataset("digits", seed=0), replace(SETTINGS, steps=int(sys.argv[2])),
               checkpoint=Path(sys.argv[1]), on_log=lambda e: print(int(e["step"]), flush=True))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("supernet") / "supernet.pt"
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        train_supernet(tiny_space(), load_dataset("digits", seed=0), SETTINGS, checkpoint=path)
    return path


def test_training_logs_and_checkpoints(trained: Path) -> None:
    state = read_checkpoint(trained, tiny_space())
    assert state["step"] == SETTINGS.steps
    assert [int(e["step"]) for e in state["history"]] == list(range(4, 25, 4))
    assert all(np.isfinite(e["loss_largest"]) and e["loss_distill"] >= 0 for e in state["history"])
    assert not list(trained.parent.glob(".*partial"))  # atomic writes leave no temp files


def test_a_finished_checkpoint_is_not_trained_again(trained: Path) -> None:
    before = trained.stat().st_mtime_ns
    result = train_supernet(tiny_space(), load_dataset("digits", seed=0), SETTINGS,
                            checkpoint=trained)
    assert result.resumed_from == SETTINGS.steps and trained.stat().st_mtime_ns == before


def test_subnet_evaluation_recalibrates_and_is_deterministic(trained: Path) -> None:
    space = tiny_space()
    supernet = load_supernet(space, trained)
    evaluator = SubnetEvaluator(space=space, supernet=supernet,
                                dataset=load_dataset("digits", seed=0),
                                settings=SubnetEvalSettings(eval_samples=200))
    largest, again = evaluator.evaluate(space.largest()), evaluator.evaluate(space.largest())
    smallest = evaluator.evaluate(space.smallest())
    assert largest.accuracy == again.accuracy and 0.15 < largest.accuracy <= 1.0
    assert 0.0 <= smallest.accuracy <= 1.0 and smallest.params < largest.params
    assert set(largest.timings) == {"extract", "calibrate", "evaluate"}
    assert not largest.model.training
    recalibrated = next(m for m in largest.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    shared = supernet.stem_bn.bn.running_mean[:recalibrated.num_features]
    assert not torch.allclose(recalibrated.running_mean, shared)  # own statistics, not the shared ones


def test_accuracy_is_counted_over_all_held_out_chunks(trained: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluators.supernet as supernet_module

    monkeypatch.setattr(supernet_module, "EVAL_CHUNK", 64)  # 200 samples: chunks 64, 64, 64, 8
    space = tiny_space()
    evaluator = SubnetEvaluator(space=space, supernet=load_supernet(space, trained),
                                dataset=load_dataset("digits", seed=0),
                                settings=SubnetEvalSettings(eval_samples=200))
    result = evaluator.evaluate(space.largest())
    with torch.no_grad():
        predicted = result.model(evaluator.eval_x).argmax(dim=1)
    assert result.accuracy == int((predicted == evaluator.eval_y).sum()) / 200


def test_a_checkpoint_of_another_space_is_one_clear_error(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"dimension stage1\.block1\.kernel_size allows \[3\] "
                                              r"in the space but \[3, 5\] in the checkpoint"):
        read_checkpoint(trained, tiny_space(kernel_sizes=[3]))
    with pytest.raises(CheckpointError, match=r"layer head\.conv\.weight has shape \(16, 8, 1, 1\) "
                                              r"in the checkpoint but \(12, 8, 1, 1\) in the space"):
        load_supernet(tiny_space(head_channels=12), trained)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_supernet(tiny_space(), tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read supernet checkpoint"):
        load_supernet(tiny_space(), tmp_path / "junk.pt")


def test_teacher_steps_train_the_largest_alone(tmp_path: Path) -> None:
    settings = replace(SETTINGS, steps=8, teacher_steps=4, log_every=2, checkpoint_every=8)
    result = train_supernet(tiny_space(), load_dataset("digits", seed=0), settings,
                            checkpoint=tmp_path / "teacher.pt")
    distill = [entry["loss_distill"] for entry in result.history]
    assert distill[:2] == [0.0, 0.0] and all(d > 0 for d in distill[2:])


class _FlatSupernet(Supernet):
    """An elastic MLP over flat (2-D) inputs whose forward uses ``.view``."""

    def __init__(self, space: ElasticSpace) -> None:
        super().__init__(space)
        self.hidden, self.out = DynamicLinear(64, 32), DynamicLinear(32, 10)

    def forward_subnet(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x.view(len(x), -1), arch["width"])))

    def extract_subnet(self, arch: Architecture) -> nn.Module:
        return nn.Sequential(nn.Flatten(), self.hidden.static(64, arch["width"]), nn.ReLU(),
                             self.out.static(arch["width"]))


class _FlatSpace(ElasticSpace):
    def choices(self) -> list[Categorical]:
        return [Categorical("width", (8, 16, 32))]

    def supernet(self) -> Supernet:
        return _FlatSupernet(self)


def test_a_custom_supernet_without_convolutions_trains_in_its_own_layout(tmp_path: Path) -> None:
    """Only supernets with depthwise convolutions train channels-last (4-D inputs only):
    flat inputs and a ``.view`` in the user's forward work as they are."""
    digits = load_dataset("digits", seed=0)
    flat = Dataset(name="flat-digits", train_x=digits.train_x.reshape(-1, 64),
                   train_y=digits.train_y, test_x=digits.test_x.reshape(-1, 64),
                   test_y=digits.test_y, input_spec=InputSpec(shape=(64,), num_classes=10))
    space = _FlatSpace(input_spec=flat.input_spec)
    result = train_supernet(space, flat, replace(SETTINGS, steps=8, checkpoint_every=8),
                            checkpoint=tmp_path / "flat.pt")
    assert result.steps == 8 and result.history[-1]["loss_largest"] > 0
    assert training_layout(space.supernet()) == torch.contiguous_format
    assert training_layout(tiny_space().supernet()) == torch.channels_last


def test_the_optimiser_state_follows_sorted_channels() -> None:
    torch.manual_seed(0)
    space = tiny_space()
    net = space.supernet()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    x = torch.tensor(load_dataset("digits", seed=0).train_x[:16])
    net(x, space.largest()).square().mean().backward()
    optimizer.step()
    before = {id(p): {k: v.clone() for k, v in optimizer.state[p].items()}
              for p in net.parameters()}
    moved = net.sort_channels()
    follow_permutations(optimizer, moved)
    for parameter, index, dim in moved:
        state = optimizer.state[parameter]
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state[name],
                                       before[id(parameter)][name].index_select(dim, index))


def test_the_sandwich_phase_starts_from_sorted_channels(tmp_path: Path) -> None:
    # one sandwich step at a learning rate too small to reorder what the sort ordered
    settings = replace(SETTINGS, steps=5, teacher_steps=4, learning_rate=1e-7, checkpoint_every=5)
    train_supernet(tiny_space(), load_dataset("digits", seed=0), settings,
                   checkpoint=tmp_path / "sorted.pt")
    net = load_supernet(tiny_space(), tmp_path / "sorted.pt")
    for blocks in net.stages:
        for block in blocks:
            importance = block.project.conv.weight.abs().sum(dim=(0, 2, 3))
            assert torch.all(importance[:-1] >= importance[1:])


def test_a_run_resumed_at_the_end_of_the_teacher_phase_sorts_and_matches(tmp_path: Path) -> None:
    """The sort happens once, at the first sandwich step: a run resumed from the last
    teacher checkpoint sorts then and ends where an uninterrupted run ends."""
    settings = replace(SETTINGS, steps=8, teacher_steps=4, checkpoint_every=4, log_every=8)
    digits = load_dataset("digits", seed=0)
    whole, teacher = tmp_path / "whole.pt", tmp_path / "teacher.pt"

    def keep_teacher_checkpoint(entry: dict[str, float]) -> None:
        shutil.copy(whole, teacher)  # at step 8 (before its save) it still holds step 4

    train_supernet(tiny_space(), digits, settings, checkpoint=whole, on_log=keep_teacher_checkpoint)
    assert torch.load(teacher, weights_only=False)["step"] == 4
    resumed = train_supernet(tiny_space(), digits, settings, checkpoint=teacher)
    assert resumed.resumed_from == 4
    expected, actual = read_checkpoint(whole, tiny_space()), read_checkpoint(teacher, tiny_space())
    for name, value in expected["model"].items():
        torch.testing.assert_close(actual["model"][name], value, msg=name)


def test_settings_are_checked() -> None:
    with pytest.raises(SettingsError, match="SupernetSettings.steps"):
        SupernetSettings(steps=0)
    with pytest.raises(SettingsError, match="teacher_steps must be below steps"):
        SupernetSettings(steps=4, teacher_steps=4)
    with pytest.raises(SettingsError, match="device"):
        SupernetSettings(device="tpu")
    with pytest.raises(SettingsError, match="eval_samples"):
        SubnetEvalSettings(eval_samples=0)


@pytest.mark.slow
def test_an_extracted_subnet_exports_and_runs_on_ort_and_openvino(trained: Path,
                                                                  tmp_path: Path) -> None:
    space = tiny_space()
    arch = space.sample(np.random.default_rng(3))
    model = load_supernet(space, trained).extract(arch).eval()
    path = export_onnx(model, example_input=space.example_input(1), path=tmp_path / "s.onnx",
                       candidate=arch.key)  # checks ONNX Runtime against torch
    inputs = np.random.default_rng(0).standard_normal((3, 1, 8, 8), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs)).numpy()
    for backend in ("onnxruntime", "openvino"):
        compiled = get_backend(backend).compile(path, options=BackendOptions(),
                                                input_shape=inputs.shape)
        try:
            np.testing.assert_allclose(compiled.run(inputs), expected, rtol=1e-3, atol=1e-4)
        finally:
            compiled.close()


def _start_training(checkpoint: Path, steps: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(checkpoint), str(steps)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_step(process: subprocess.Popen[str], step: int) -> None:
    assert process.stdout is not None and process.stderr is not None
    for line in process.stdout:
        if int(line) >= step:
            return
    raise AssertionError(f"training ended early ({process.wait()}): {process.stderr.read()}")


@pytest.mark.slow
def test_training_resumes_after_sigkill_from_its_last_checkpoint(tmp_path: Path) -> None:
    steps, checkpoint = 80, tmp_path / "supernet.pt"
    process = _start_training(checkpoint, steps)
    try:
        _wait_for_step(process, 12)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = int(torch.load(checkpoint, weights_only=False)["step"])
    assert 8 <= saved < steps and saved % SETTINGS.checkpoint_every == 0

    dataset, settings = load_dataset("digits", seed=0), replace(SETTINGS, steps=steps)
    resumed = train_supernet(tiny_space(), dataset, settings, checkpoint=checkpoint)
    assert resumed.resumed_from == saved
    straight = train_supernet(tiny_space(), dataset, settings, checkpoint=tmp_path / "straight.pt")
    assert straight.resumed_from == 0
    # Batches and subnets depend only on the seed and the step: resuming repeats the lost steps.
    torch.testing.assert_close(load_supernet(tiny_space(), checkpoint).state_dict(),
                               load_supernet(tiny_space(), tmp_path / "straight.pt").state_dict())


SIGTERM_SCRIPT = """
import os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from evaluators.data import load_dataset
from evaluators.errors import TrainingInterrupted
from evaluators.supernet import train_supernet
from tests.evaluators.test_supernet import SETTINGS
from tests.elastic_fixtures import tiny_space

def terminate_at_step_8(entry):
    if entry["step"] == 8:
        os.kill(os.getpid(), signal.SIGTERM)

try:
    train_supernet(tiny_space(), load_dataset("digits", seed=0), SETTINGS,
                   checkpoint=Path(sys.argv[1]), on_log=terminate_at_step_8)
except TrainingInterrupted as error:
    print(error)
print("handler restored:", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_stops(tmp_path: Path) -> None:
    # A process of its own, as a trial is: the SIGTERM reaches only the training under test.
    checkpoint = tmp_path / "supernet.pt"
    done = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT, str(checkpoint)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    interrupted, restored = done.stdout.strip().splitlines()[-2:]
    assert f"at step 8/24; checkpoint saved to {checkpoint}" in interrupted
    assert restored == "handler restored: True"
    assert read_checkpoint(checkpoint, tiny_space())["step"] == 8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU: torch sees no CUDA device")
def test_the_supernet_trains_on_a_gpu_and_loads_on_the_cpu(tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    result = train_supernet(tiny_space(), load_dataset("digits", seed=0),
                            replace(SETTINGS, steps=8, device="cuda"), checkpoint=path)
    assert result.resumed_from == 0 and read_checkpoint(path, tiny_space())["step"] == 8
    supernet = load_supernet(tiny_space(), path)
    assert next(supernet.parameters()).device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_without_one_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="torch sees no CUDA GPU here"):
        train_supernet(tiny_space(), load_dataset("digits", seed=0),
                       replace(SETTINGS, device="cuda"), checkpoint=tmp_path / "s.pt")
