"""The FHIR store the API serves, API clients, clinician PDFs, bulk export jobs, the patient's MRN.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Resources are stored as canonical JSON when they are written (Patient on creation, completed
QuestionnaireResponses on submit, Observations/Flags/Provenance on scoring, DocumentReference
when the PDF is rendered); `fhir_tokens` indexes their token, reference and name parameters.
Intakes completed before this revision get their resources with `flask intake publish --all`
(it needs the loaded Questionnaires, which a migration must not depend on).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("mrn", sa.String(64), nullable=True))
        batch.add_column(sa.Column("mrn_system", sa.String(255), nullable=True))

    op.create_table(
        "fhir_resources",
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", _utc(), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=True),
        sa.Column("intake_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("date", _utc(), nullable=True),
        sa.Column("resource_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_fhir_resources")),
        sa.UniqueConstraint("resource_type", "resource_id", name=op.f("uq_fhir_resources_resource_type_resource_id")),
    )
    op.create_index("ix_fhir_resources_type_seq", "fhir_resources", ["resource_type", "seq"])
    op.create_index("ix_fhir_resources_type_patient_seq", "fhir_resources", ["resource_type", "patient_id", "seq"])
    op.create_index(op.f("ix_fhir_resources_last_updated"), "fhir_resources", ["last_updated"])
    op.create_index(op.f("ix_fhir_resources_intake_id"), "fhir_resources", ["intake_id"])

    op.create_table(
        "fhir_tokens",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("resource_seq", sa.Integer(), nullable=False),
        sa.Column("param", sa.String(32), nullable=False),
        sa.Column("system", sa.String(255), nullable=True),
        sa.Column("value", sa.String(320), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_tokens")),
        sa.ForeignKeyConstraint(["resource_seq"], ["fhir_resources.seq"], ondelete="CASCADE",
                                name=op.f("fk_fhir_tokens_resource_seq_fhir_resources")),
    )
    op.create_index("ix_fhir_tokens_param_value", "fhir_tokens", ["param", "value"])
    op.create_index(op.f("ix_fhir_tokens_resource_seq"), "fhir_tokens", ["resource_seq"])

    op.create_table(
        "documents",
        sa.Column("intake_id", sa.String(36), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("rendered_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("intake_id", name=op.f("pk_documents")),
        sa.ForeignKeyConstraint(["intake_id"], ["intakes.id"], name=op.f("fk_documents_intake_id_intakes")),
    )

    op.create_table(
        "export_jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_url", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("group_id", sa.String(64), nullable=True),
        sa.Column("types", sa.JSON(), nullable=False),
        sa.Column("since", _utc(), nullable=True),
        sa.Column("transaction_time", _utc(), nullable=False),
        sa.Column("progress", sa.String(255), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(255), nullable=True),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_jobs")),
        sa.CheckConstraint("status IN ('accepted', 'in-progress', 'completed', 'failed', 'cancelled')",
                           name=op.f("ck_export_jobs_status")),
    )


    op.create_table(
        "api_clients",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_api_clients_name")),
    )
    op.create_table(
        "used_assertions",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("client", sa.String(255), nullable=False),
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_used_assertions")),
        sa.UniqueConstraint("client", "jti", name=op.f("uq_used_assertions_client_jti")),
    )
    op.create_index(op.f("ix_used_assertions_expires_at"), "used_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("used_assertions")
    op.drop_table("api_clients")
    op.drop_table("export_jobs")
    op.drop_table("documents")
    op.drop_table("fhir_tokens")
    op.drop_table("fhir_resources")
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("mrn_system")
        batch.drop_column("mrn")
