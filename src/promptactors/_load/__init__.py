"""Load runs: many instances, one streamed turn each, measured (``promptactors load``)."""

from ._driver import DEMO_PROMPT as DEMO_PROMPT
from ._driver import LoadMonitor as LoadMonitor
from ._driver import run_load as run_load
from ._merge import LoadPart as LoadPart
from ._merge import merge_reports as merge_reports
from ._report import CSV_COLUMNS as CSV_COLUMNS
from ._report import LoadReport as LoadReport
from ._stats import Failure as Failure
from ._stats import Goodput as Goodput
from ._stats import Latency as Latency
from ._stats import Second as Second
from ._stats import TurnSample as TurnSample
from ._stats import percentile as percentile

__all__ = [
    "CSV_COLUMNS",
    "DEMO_PROMPT",
    "Failure",
    "Goodput",
    "Latency",
    "LoadMonitor",
    "LoadPart",
    "LoadReport",
    "Second",
    "TurnSample",
    "merge_reports",
    "percentile",
    "run_load",
]
