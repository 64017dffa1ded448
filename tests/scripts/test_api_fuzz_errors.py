"""How scripts/api_fuzz.py reads schemathesis's summary of errors (its text, as printed
by schemathesis 4.10.2 in a CI run on 2026-11-30)."""

from __future__ import annotations

from scripts.api_fuzz import FIXED_SEED, _generator_only

SUMMARY = """
Errors:
  🚫 Failed Health Check: 1

Warnings:
  ⚠️ Missing valid test data: 12 operations repeatedly returned 404 responses

Test cases:
  252 generated, 252 passed, 98 skipped
"""


def test_a_health_check_alone_is_the_generators_trouble_on_a_random_seed() -> None:
    assert _generator_only(SUMMARY, 592836111)


def test_the_fixed_seed_must_generate_every_operation() -> None:
    assert not _generator_only(SUMMARY, FIXED_SEED)


def test_any_other_error_still_fails() -> None:
    other = SUMMARY.replace("Health Check: 1\n", "Health Check: 1\n  🚫 Network Error: 1\n")
    assert not _generator_only(other, 592836111)
    assert not _generator_only(SUMMARY.replace("Errors:", "Nothing:"), 592836111)
