"""MET Audit: the compliance audit core for Medical Exercise Training practices.

The package is plain Python: it reads a practice database, checks it against
the rulebook with Great Expectations and writes findings. Airflow DAGs under
``dags/`` only wire its functions together.
"""

from __future__ import annotations

__version__ = "0.1.0"
