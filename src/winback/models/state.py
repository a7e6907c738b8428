"""Every state-store table, imported in one place so metadata is complete (for Alembic)."""

from winback.models.base import Base
from winback.models.customer import Customer
from winback.models.imports import ImportRun
from winback.models.scores import AnalysisRun, CustomerScore

__all__ = ["AnalysisRun", "Base", "Customer", "CustomerScore", "ImportRun"]
