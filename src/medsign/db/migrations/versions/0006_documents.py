"""documents: PDFs of document requests, handwriting and seal images, seal rights and jobs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import medsign.db.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("original", sa.LargeBinary(), nullable=False),
        sa.Column("original_sha256", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("signed", sa.LargeBinary(), nullable=True),
        sa.Column("signed_sha256", sa.String(length=64), nullable=True),
        sa.Column("prepared", sa.LargeBinary(), nullable=True),
        sa.Column("prepared_state", sa.Text(), nullable=True),
        sa.Column("created_at", medsign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["sign_requests.id"],
            name=op.f("fk_documents_request_id_sign_requests"),
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_documents")),
    )
    op.create_table(
        "signature_images",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", medsign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", medsign.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_images")),
    )
    op.create_table(
        "seal_jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("application_id", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("body_digest", sa.String(length=64), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("created_at", medsign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", medsign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", medsign.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_seal_jobs_application_id_applications"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_seal_jobs_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seal_jobs")),
        sa.UniqueConstraint("application_id", "idempotency_key", name="uq_seal_jobs_app_key"),
    )
    op.create_index(
        op.f("ix_seal_jobs_application_id"), "seal_jobs", ["application_id"], unique=False
    )
    op.create_table(
        "seal_items",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=200), nullable=False),
        sa.Column("original", sa.LargeBinary(), nullable=False),
        sa.Column("original_sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lease_until", medsign.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("sealed_sha256", sa.String(length=64), nullable=True),
        sa.Column("sealed_at", medsign.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["seal_jobs.id"], name=op.f("fk_seal_items_job_id_seal_jobs")
        ),
        sa.PrimaryKeyConstraint("job_id", "position", name=op.f("pk_seal_items")),
    )
    op.create_index(
        "ix_seal_items_state", "seal_items", ["job_id", "state", "position"], unique=False
    )
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("seal_purposes", sa.Text(), nullable=False, server_default="[]"))
    op.create_index(
        "ix_signature_images_owner",
        "signature_images",
        ["owner_kind", "owner_id", "state"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_seal_items_state", table_name="seal_items")
    op.drop_table("seal_items")
    op.drop_index(op.f("ix_seal_jobs_application_id"), table_name="seal_jobs")
    op.drop_table("seal_jobs")
    op.drop_index("ix_signature_images_owner", table_name="signature_images")
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("seal_purposes")
    op.drop_table("signature_images")
    op.drop_table("documents")
