"""Every state-store table, imported in one place so metadata is complete (for Alembic)."""

from winback.models.base import Base
from winback.models.customer import Customer
from winback.models.imports import ImportRun
from winback.models.scores import AnalysisRun, CustomerScore
from winback.models.segments import Segment, SegmentMembership, SegmentRefresh

__all__ = ["AnalysisRun", "Base", "Customer", "CustomerScore", "ImportRun", "Segment", "SegmentMembership",
           "SegmentRefresh"]
