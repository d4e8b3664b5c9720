"""A realistic data set for the local CRM: AEs by territory, a referral queue, a few dozen
customer and prospect accounts of varied tenure and health, and their contacts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from referral_sync.local import tables as t
from referral_sync.local.crm import LocalCrm, new_id

USERS = [
    # (name, email, territory)
    ("Maya Chen", "maya.chen@acme-saas.com", "AMER"),
    ("Diego Alvarez", "diego.alvarez@acme-saas.com", "AMER"),
    ("Sofia Rossi", "sofia.rossi@acme-saas.com", "EMEA"),
    ("Lars Berg", "lars.berg@acme-saas.com", "EMEA"),
    ("Aisyah Rahman", "aisyah.rahman@acme-saas.com", "APAC"),
    ("Ravi Kumar", "ravi.kumar@acme-saas.com", "APAC"),
    ("Priya Nair", "priya.nair@acme-saas.com", "Referral desk"),
]
QUEUE_NAME = "Referral Queue"

COUNTRIES = {"AMER": ["US", "CA", "BR"], "EMEA": ["DE", "FR", "GB", "NL"],
             "APAC": ["MY", "SG", "AU", "IN"]}
INDUSTRIES = ["Software", "Manufacturing", "Retail", "Healthcare", "Financial Services",
              "Logistics"]
WORDS = ["Northwind", "Bluepeak", "Harbor", "Cobalt", "Lumen", "Evergreen", "Summit", "Quarry",
         "Atlas", "Pioneer", "Granite", "Meridian", "Tidewater", "Solstice", "Beacon", "Orchard",
         "Vantage", "Keystone", "Riverbend", "Silverline", "Ironwood", "Brightwave", "Falcon",
         "Juniper", "Crescent", "Redwood", "Starling", "Alder", "Copperleaf", "Wayfinder"]
SUFFIXES = ["Inc.", "GmbH", "Ltd", "Sdn Bhd", "LLC", "B.V.", "Pty Ltd", "SA"]
FIRST = ["Alice", "Ben", "Carla", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jon",
         "Kavya", "Liam", "Mei", "Nadia", "Omar", "Paula", "Quinn", "Rosa", "Sam", "Tara"]
LAST = ["Johnson", "Okafor", "Muller", "Tan", "Silva", "Hassan", "Lee", "Novak", "Wong",
        "Garcia", "Ibrahim", "Smith", "Kowalski", "Lim", "Dubois", "Nakamura"]


@dataclass(frozen=True)
class AccountSpec:
    """What kind of account to create: its type, tenure and health."""

    type: str
    tenure_days: int
    status: str | None


def _specs(rng: random.Random) -> list[AccountSpec]:
    specs = [AccountSpec("Customer - Direct", rng.randint(200, 1500), None) for _ in range(14)]
    specs += [AccountSpec("Customer - Channel", rng.randint(120, 900), None) for _ in range(4)]
    specs += [AccountSpec("Customer - Direct", rng.randint(10, 60), None) for _ in range(2)]
    specs += [AccountSpec("Customer - Direct", rng.randint(300, 900), s)
              for s in ("at_risk", "collections", "dispute")]
    specs += [AccountSpec("Customer - Direct", 400, "trial"), AccountSpec("Prospect", 100, None)]
    specs += [AccountSpec("Prospect", rng.randint(5, 300), None) for _ in range(5)]
    return specs


def seed(crm: LocalCrm, *, now: datetime, seed_value: int = 7) -> dict[str, str]:
    """Fill an empty local CRM; returns user ids by e-mail plus ``queue``."""
    rng = random.Random(seed_value)
    ids: dict[str, str] = {}
    with crm.engine.begin() as conn:
        for name, email, _territory in USERS:
            ids[email] = new_id("user")
            conn.execute(t.users.insert().values(id=ids[email], name=name, email=email,
                                                 kind="user", active=True))
        ids["queue"] = new_id("queue")
        conn.execute(t.users.insert().values(id=ids["queue"], name=QUEUE_NAME, kind="queue",
                                             active=True))
        reps = [(ids[e], terr) for _, e, terr in USERS if terr in COUNTRIES]
        for index, spec in enumerate(_specs(rng)):
            _account(conn, rng, index, spec, reps, now)
    return ids


def _account(conn: sa.Connection, rng: random.Random, index: int, spec: AccountSpec,
             reps: list[tuple[str, str]], now: datetime) -> None:
    owner_id, territory = reps[index % len(reps)]
    word = WORDS[index % len(WORDS)]
    name = f"{word} {rng.choice(INDUSTRIES).split()[0]} {rng.choice(SUFFIXES)}"
    domain = f"{word.lower()}{index}.com"
    account_id = new_id("account")
    since = now - timedelta(days=spec.tenure_days)
    conn.execute(t.accounts.insert().values(
        id=account_id, name=name, domain=domain, type=spec.type,
        customer_since=since if spec.type.startswith("Customer") else None,
        status=spec.status, usage_active=None, owner_id=owner_id,
        industry=rng.choice(INDUSTRIES), employees=rng.choice([40, 120, 450, 1500, 5000]),
        country=rng.choice(COUNTRIES[territory]), created_at=since - timedelta(days=30)))
    csm = reps[(index + 1) % len(reps)][0]
    conn.execute(t.account_team.insert().values(account_id=account_id,
                                                role="Customer Success Manager", user_id=csm))
    for n in range(rng.randint(1, 3)):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        conn.execute(t.contacts.insert().values(
            id=new_id("contact"), account_id=account_id, first_name=first, last_name=last,
            email=f"{first.lower()}.{last.lower()}{n}@{domain}",
            created_at=since - timedelta(days=20)))


def describe_accounts(crm: LocalCrm) -> list[dict[str, object]]:
    """Accounts with their first contact, for picking demo referrers."""
    with crm.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.accounts, t.contacts.c.email.label("contact_email"),
                      t.contacts.c.first_name, t.contacts.c.last_name)
            .join(t.contacts, t.contacts.c.account_id == t.accounts.c.id)
            .order_by(t.accounts.c.name, t.contacts.c.email))
        seen: dict[str, dict[str, object]] = {}
        for row in rows:
            seen.setdefault(row.id, dict(row._mapping))
    return list(seen.values())
