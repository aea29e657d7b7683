"""Point-in-time figures written by the ``snapshot_metrics`` job."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from gradeflow.db.base import Base, timestamp_now, uuid_pk


class MetricSnapshot(Base):
    __tablename__ = "metric_snapshots"
    __table_args__ = (Index("idx_metric_snapshots_type_captured", "metric_type", "captured_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    assessment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assessments.id"))
    metric_type: Mapped[str] = mapped_column(String(32), nullable=False)
    value: Mapped[Decimal] = mapped_column(Numeric(12, 3), nullable=False)
    context: Mapped[dict[str, Any] | None]
    captured_at: Mapped[datetime] = timestamp_now()
