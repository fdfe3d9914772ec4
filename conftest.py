"""Root pytest configuration, shared by tests/ and the nbval run of nbs/.

Notebooks check `SSDBOOK_QUICK`: under the test run they use small budgets (iterations, images) so
the whole suite stays fast. The committed outputs come from full runs (`make run-nbs`).
nbval starts each notebook's kernel from this process, so the variable reaches the kernels.
"""
import os

os.environ.setdefault("SSDBOOK_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
