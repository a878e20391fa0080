from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.orgs.models import Organization
from app.stages.service import seed_default_stages
from app.users.models import Role, User
from app.users.service import add_user


@dataclass(frozen=True)
class CreatedOrg:
    org: Organization
    admin: User


async def create_org(
    session: AsyncSession, *, name: str, admin_email: str, admin_password: str, admin_name: str
) -> CreatedOrg:
    """A new tenant with its first admin and the default sales-stage taxonomy."""
    org = Organization(name=name.strip())
    session.add(org)
    await session.flush()
    seed_default_stages(session, org.id)
    admin = await add_user(
        session,
        org_id=org.id,
        email=admin_email,
        name=admin_name,
        role=Role.admin,
        password=admin_password,
    )
    return CreatedOrg(org=org, admin=admin)
