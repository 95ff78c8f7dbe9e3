"""``paretonas supernet train CONFIG``: train (or resume) a weight-sharing supernet alone."""

from __future__ import annotations

import argparse

from rich.console import Console

from orchestrator.commands.search import add_overrides, load_from_args


def register(commands: argparse._SubParsersAction) -> None:
    supernet = commands.add_parser("supernet", help="weight-sharing supernets")
    actions = supernet.add_subparsers(dest="supernet_command", required=True)
    train = actions.add_parser(
        "train", help="train the config's supernet as a Ray Tune trial (resumes a checkpoint)")
    train.add_argument("config", help="path to the YAML config (mode: weight_sharing)")
    add_overrides(train)
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace, console: Console) -> int:
    from evaluators.data import load_dataset
    from evaluators.supernet import read_checkpoint
    from orchestrator.preflight import check_gpus, check_supernet_cpus
    from orchestrator.ray_session import ray_session
    from orchestrator.tracking import MlflowTracker
    from orchestrator.weight_sharing import default_checkpoint, elastic_space, train_supernet_trial

    config = load_from_args(args)
    check_supernet_cpus(config)
    check_gpus(config, trials=False)
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = elastic_space(config, dataset.input_spec)
    checkpoint = default_checkpoint(config)
    settings = config.supernet
    console.print(f"[bold]paretonas[/] supernet of {space.name}: {settings.steps} steps on "
                  f"{settings.device}, checkpoint {checkpoint}", soft_wrap=True)
    tracker = MlflowTracker(uri=config.tracking.uri, experiment=config.tracking.experiment,
                            log_models=config.tracking.log_models)
    tracker.start_search(config)
    status = "FAILED"
    try:
        with ray_session(config):
            train_supernet_trial(config, checkpoint=checkpoint)
        state = read_checkpoint(checkpoint, space)
        tracker.log_supernet(state["history"], checkpoint)
        status = "FINISHED"
    finally:
        tracker.end_search(status)
    last = state["history"][-1] if state["history"] else {}
    console.print(f"trained to step {state['step']}: loss (largest) "
                  f"{last.get('loss_largest', float('nan')):.4g}, distillation "
                  f"{last.get('loss_distill', float('nan')):.4g}")
    console.print(f"use it with: --set supernet.checkpoint={checkpoint}", soft_wrap=True)
    return 0
