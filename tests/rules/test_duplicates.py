"""Company-name normalisation, public-suffix aware domains, free-mail and disposable lists."""

from __future__ import annotations

import pytest

from referral_sync.rules import email_domain_kind, normalise_company, registrable_domain


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Société Générale S.A.", "societe generale"),
        ("ACME, Inc.", "Acme"),
        ("Acme GmbH & Co. KG", "ACME"),
        ("Acme Sdn. Bhd.", "acme"),
        ("The Acme Company", "Acme Corp"),
        ("Johnson & Johnson", "Johnson and Johnson"),
    ],
)
def test_company_names_that_are_the_same_company_normalise_alike(a: str, b: str) -> None:
    assert normalise_company(a) == normalise_company(b)


def test_different_companies_stay_different() -> None:
    assert normalise_company("Acme Labs") != normalise_company("Acme Logistics")


@pytest.mark.parametrize(
    ("domain", "registrable"),
    [
        ("eu.mail.example.co.uk", "example.co.uk"),
        ("Example.COM.", "example.com"),
        ("shop.example.com.my", "example.com.my"),
        ("team-a.github.io", "team-a.github.io"),  # private suffix: each tenant is its own
        ("localhost", "localhost"),
    ],
)
def test_registrable_domain_uses_the_public_suffix_list(domain: str, registrable: str) -> None:
    assert registrable_domain(domain) == registrable


@pytest.mark.parametrize(
    ("domain", "kind"),
    [
        ("gmail.com", "free"),
        ("yahoo.co.uk", "free"),
        ("hotmail.de", "free"),
        ("mailinator.com", "disposable"),
        ("guerrillamail.com", "disposable"),
        ("prospect-labs.io", "work"),
        ("eu.prospect-labs.io", "work"),
    ],
)
def test_email_domain_kind(domain: str, kind: str) -> None:
    assert email_domain_kind(domain) == kind
