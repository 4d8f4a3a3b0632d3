"""``report.html``: one self-contained page that shows an eval folder (settings, metrics,
charts, every example and its verdicts), and the comparison of two runs of one set."""

from icrm_sgl.evaluation.report.build import REPORT, write_comparison, write_report

__all__ = ["REPORT", "write_comparison", "write_report"]
