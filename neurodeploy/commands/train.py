"""``neurodeploy train``: train a spiking network with TSSL-BP, BPSA/BPTA or plain BPTT."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurodeploy.train import add_train_arguments

    add_train_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from neurodeploy.train import run_train

    return run_train(args)
