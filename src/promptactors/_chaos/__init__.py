"""Chaos runs: a load with a seeded fault schedule, then the invariant checker
(``promptactors chaos``); ``--simulate`` sweeps seeds in virtual time."""

from ._report import ChaosReport as ChaosReport
from ._report import SweepReport as SweepReport
from ._run import run_chaos as run_chaos
from ._schedule import FAULT_KINDS as FAULT_KINDS
from ._simulate import sweep as simulate_sweep

__all__ = ["FAULT_KINDS", "ChaosReport", "SweepReport", "run_chaos", "simulate_sweep"]
