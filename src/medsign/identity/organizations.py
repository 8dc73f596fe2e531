from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from medsign.clock import Clock
from medsign.db.session import Database
from medsign.db.tables import OrganizationRow
from medsign.ids import OrganizationId, new_id

DEMO_HOSPITAL_CODE = "demo"
DEMO_HOSPITAL_NAME = "示例人民医院"


@dataclass(frozen=True)
class Organization:
    id: OrganizationId
    code: str
    name: str
    demo: bool


def _to_domain(row: OrganizationRow) -> Organization:
    return Organization(OrganizationId(row.id), row.code, row.name, row.demo)


def ensure_organization(
    database: Database, clock: Clock, *, code: str, name: str, demo: bool = False
) -> Organization:
    """Create the organization unless one with this code exists (idempotent)."""
    with database.session() as session:
        row = session.scalar(select(OrganizationRow).where(OrganizationRow.code == code))
        if row is None:
            row = OrganizationRow(
                id=new_id("org"), code=code, name=name, demo=demo, created_at=clock.now()
            )
            session.add(row)
            session.flush()
        return _to_domain(row)


def list_organizations(database: Database) -> list[Organization]:
    with database.session() as session:
        rows = session.scalars(select(OrganizationRow).order_by(OrganizationRow.created_at))
        return [_to_domain(r) for r in rows]
