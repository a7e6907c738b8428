"""Every state-store table, imported in one place so metadata is complete (for Alembic)."""

from winback.models.base import Base
from winback.models.campaigns import Campaign, Coupon, CustomerEvent, Enrollment, PlaybookVersion
from winback.models.customer import Customer
from winback.models.dunning import (BillingPaymentMethod, BillingSubscription, DunningAttempt, DunningCase, SandboxCard,
                                    SandboxCharge)
from winback.models.delivery import CallTask, DeliveryAttempt, OutboxMessage, SendCounter, Suppression
from winback.models.imports import ImportRun
from winback.models.scores import AnalysisRun, CustomerScore
from winback.models.segments import Segment, SegmentMembership, SegmentRefresh
from winback.models.tracking import (Conversion, CustomerPreference, ExperimentDecision, SurveyResponse, TrackingEvent,
                                     WebhookEvent)
from winback.models.web import ApiKey, User

__all__ = ["BillingPaymentMethod", "BillingSubscription", "DunningAttempt", "DunningCase", "SandboxCard", "SandboxCharge",
           "AnalysisRun", "ApiKey", "Conversion", "CustomerPreference", "ExperimentDecision", "SurveyResponse",
           "TrackingEvent", "User", "WebhookEvent", "Base", "CallTask", "Campaign", "Coupon", "Customer", "CustomerEvent", "CustomerScore",
           "DeliveryAttempt", "Enrollment", "ImportRun", "OutboxMessage", "PlaybookVersion", "Segment",
           "SegmentMembership", "SegmentRefresh", "SendCounter", "Suppression"]
