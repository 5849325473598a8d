"""Initial registry: datasets, dataset_versions, jobs, runs, servers.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("latest_version", sa.Integer),
        sa.Column("created_at", TS),
    )
    op.create_index("ix_datasets_name", "datasets", ["name"], unique=True)
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("file", sa.String(500)),
        sa.Column("format", sa.String(32)),
        sa.Column("rows", sa.Integer),
        sa.Column("size_bytes", sa.Integer),
        sa.Column("created_at", TS),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("dataset_id", "version"),
    )
    op.create_index("ix_dataset_versions_dataset_id", "dataset_versions", ["dataset_id"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("base", sa.String(100)),
        sa.Column("parent", sa.String(100)),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS),
        sa.Column("queued_at", TS),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("step", sa.Integer),
        sa.Column("total_steps", sa.Integer),
        sa.Column("loss", sa.Float),
        sa.Column("progress", sa.Float),
        sa.Column("eta_seconds", sa.Float),
        sa.Column("tokens_per_second", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("error_kind", sa.String(16)),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("current_run", sa.Integer),
    )
    op.create_index("ix_jobs_name", "jobs", ["name"], unique=True)
    op.create_index("ix_jobs_base", "jobs", ["base"])
    op.create_index("ix_jobs_parent", "jobs", ["parent"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("pid_started_at", sa.Float),
        sa.Column("gpu", sa.String(32)),
        sa.Column("exit_code", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("events_offset", sa.Integer, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("ended_at", TS),
        sa.Column("log_file", sa.String(500)),
        sa.UniqueConstraint("job_id", "n"),
    )
    op.create_index("ix_runs_job_id", "runs", ["job_id"])
    op.create_table(
        "servers",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("pid_started_at", sa.Float),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer),
        sa.Column("url", sa.String(500)),
        sa.Column("serves", sa.String(500)),
        sa.Column("log_file", sa.String(500)),
        sa.Column("started_at", TS),
        sa.Column("meta", sa.JSON, nullable=False),
    )
    op.create_index("ix_servers_kind", "servers", ["kind"])


def downgrade() -> None:
    for table in ("servers", "runs", "jobs", "dataset_versions", "datasets"):
        op.drop_table(table)
