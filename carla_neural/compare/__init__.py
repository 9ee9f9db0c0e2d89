"""Raw vs neural comparison of a recorded run: metrics.json and an HTML report."""

from carla_neural.compare.compute import ALL_METRICS, CompareOptions, CompareResult, compare_run
from carla_neural.compare.report import ReportPaths, write_report
from carla_neural.compare.run_folder import RunFolder, RunFolderError

__all__ = [
    "ALL_METRICS",
    "CompareOptions",
    "CompareResult",
    "ReportPaths",
    "RunFolder",
    "RunFolderError",
    "compare_run",
    "write_report",
]
