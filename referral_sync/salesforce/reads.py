"""What intake reads from Salesforce: the referrer, records matching the referee, the account
owning the referee's domain, and the owners routing may pick.

``load_intake`` asks all of it in one Composite call: referrer, account team (when routing
names a team role), leads, contacts and accounts (open opportunities as a child subquery) are
queries, at most five per Composite; owners are by-id retrieves beside them. The referrer's
colleagues are not queried: the one that matters (the referee, a contact of the referrer's
own account) is among the duplicate contacts already.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from referral_sync.crm import (
    DuplicateCandidate,
    IntakeLookup,
    IntakeSnapshot,
    Owner,
    ReferrerContext,
)
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce import queries, records
from referral_sync.salesforce.client import SalesforceClient, SubRequest, SubResult, query_path
from referral_sync.salesforce.owners import OwnerBook
from referral_sync.salesforce.ttl import TtlCache

#: Subrequests per Composite call, and queries among them (Salesforce limits).
COMPOSITE_LIMIT = 25
QUERY_LIMIT = 5


class IntakeReads:
    """The adapter's intake reads."""

    def __init__(self, client: SalesforceClient, mapping: CrmMapping, owners: OwnerBook,
                 clock: Callable[[], datetime]) -> None:
        self._client = client
        self._mapping = mapping
        self._owners = owners
        self._domain_accounts: TtlCache[list[dict[str, Any]]] = TtlCache(
            clock, timedelta(minutes=1))
        self._account_teams = True

    def _queries(self, soql: Mapping[str, str]) -> list[SubRequest]:
        return [SubRequest(ref, "GET", query_path(q)) for ref, q in soql.items()]

    def find_duplicates(
        self, email: str, domain: str | None, company_key: str, since: datetime
    ) -> list[DuplicateCandidate]:
        """Leads (created since ``since``), contacts, customer accounts and their open
        opportunities matching the referee, in one Composite call."""
        soql = queries.duplicate_queries(email, domain, company_key, since)

        def read(results: dict[str, SubResult]) -> list[DuplicateCandidate]:
            found = self._found(soql, results, domain)
            return records.duplicate_candidates(found, email, domain, company_key,
                                                self._mapping)

        return self._client.composite(self._queries(soql), read)

    def _found(self, soql: Mapping[str, str], results: Mapping[str, SubResult],
               domain: str | None) -> dict[str, list[dict[str, Any]]]:
        found = {ref: self._client.raise_for(results.get(ref)).records() for ref in soql}
        accounts = found.get("accounts", [])
        if domain and len(accounts) < queries.DUPLICATE_LIMIT:
            # A truncated list might miss the domain's account; then ask again later.
            self._domain_accounts.put(domain.lower(), accounts)
        return found

    def load_referrer(self, email: str) -> ReferrerContext | None:
        """The referrer's contact, account facts, account team and colleagues (one call)."""
        soql = queries.referrer_queries(email, self._mapping, account_team=self._account_teams)

        def read(results: dict[str, SubResult]) -> ReferrerContext | None:
            found = self._client.raise_for(results.get("referrer")).records()
            if not found:
                return None
            contact = found[0]
            has_account = bool(contact.get("AccountId"))
            return records.referrer_context(
                contact, results["colleagues"].records() if has_account else [],
                self._team(results.get("team")) if has_account else [], self._mapping)

        return self._client.composite(self._queries(soql), read)

    def _team(self, result: SubResult | None) -> list[dict[str, Any]]:
        if result is None:
            return []
        if not result.ok:
            code = str((result.body or [{}])[0].get("errorCode", "")) if isinstance(
                result.body, list) else ""
            if code == "INVALID_TYPE":
                # Account Teams are off in this org; stop asking.
                self._account_teams = False
                return []
            self._client.raise_for(result)
        return result.records()

    def find_account_by_domain(self, domain: str) -> ReferrerContext | None:
        """The account that owns ``domain`` (lead-to-account match), customers first."""
        fresh, accounts = self._domain_accounts.get(domain.lower())
        if not fresh or accounts is None:
            accounts = self._client.query(queries.accounts_by_domain(domain))
        account = records.best_domain_account(accounts, domain.lower(),
                                              self._mapping.customer_type_prefix)
        if account is None:
            return None
        return ReferrerContext(contact_id="", email="",
                               **records.account_context(account, self._mapping))

    def load_intake(self, lookup: IntakeLookup) -> IntakeSnapshot:
        """Everything intake needs in one Composite call. Learning which users and queues
        the policy's ``email:``/``queue:`` refs name (then kept a day) rides along when the
        five-query limit leaves room, else costs one call before."""
        referrer_soql = queries.referrer_queries(
            lookup.referrer_email, self._mapping, colleagues=False,
            account_team=self._account_teams and lookup.account_team)
        duplicate_soql = queries.duplicate_queries(
            lookup.referee_email, lookup.domain, lookup.company_key, lookup.since)
        soql = {**referrer_soql, **duplicate_soql}
        unknown = self._owners.unresolved(lookup.owner_refs)
        names_soql = queries.owner_names_queries(unknown)
        if len(soql) + len(names_soql) > QUERY_LIMIT:
            self._owners.resolve_names(unknown)
            unknown, names_soql = [], {}
        subs = self._queries({**soql, **names_soql})
        # Owners beyond what fits are looked up one by one by the service (large pools).
        pending = dict(list(self._owners.status_subrequests(lookup.owner_refs).items())
                       [:COMPOSITE_LIMIT - len(subs)])
        subs += [sub for _, sub in pending.values()]

        def read(results: dict[str, SubResult]) -> IntakeSnapshot:
            found = self._found(duplicate_soql, results, lookup.domain)
            owners = self._owners.learn_names(unknown, names_soql, results)
            owners.update(self._owners.read_statuses(pending, results))
            for account in found.get("accounts", []):
                _add(owners, records.owner(account, "OwnerId", "Owner."))
            return IntakeSnapshot(
                referrer=self._referrer(results, found.get("contacts", []), owners),
                duplicates=records.duplicate_candidates(
                    found, lookup.referee_email, lookup.domain, lookup.company_key,
                    self._mapping),
                owners=owners)

        snapshot = self._client.composite(subs, read)
        if not (lookup.match_account and lookup.domain):
            return snapshot
        return IntakeSnapshot(referrer=snapshot.referrer, duplicates=snapshot.duplicates,
                              account_match=self.find_account_by_domain(lookup.domain),
                              owners=snapshot.owners)

    def _referrer(self, results: Mapping[str, SubResult], contacts: list[dict[str, Any]],
                  owners: dict[str, Owner | None]) -> ReferrerContext | None:
        found = self._client.raise_for(results.get("referrer")).records()
        if not found:
            return None
        contact, account_id = found[0], found[0].get("AccountId")
        colleagues = [c for c in contacts if account_id and c.get("AccountId") == account_id]
        team = self._team(results.get("team")) if account_id else []
        _add(owners, records.owner(contact, "Account.OwnerId", "Account.Owner."))
        for member in team:
            _add(owners, records.owner(member, "UserId", "User."))
        return records.referrer_context(contact, colleagues, team, self._mapping)


def _add(owners: dict[str, Owner | None], owner: Owner | None) -> None:
    if owner is not None:
        owners[owner.id] = owner
