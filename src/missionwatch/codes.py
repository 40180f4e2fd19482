"""The closed sets of codes missionwatch speaks: why an input was rejected, why a
mission was escalated. Tests match codes; people read the sentences.

Each code has one plain-sentence template. `reject_reason` and `escalation_reason`
fill it; a test checks that every code is documented in the README.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

__all__ = [
    "ESCALATION_TEMPLATES",
    "REJECTION_TEMPLATES",
    "EscalationCode",
    "RejectionCode",
    "escalation_reason",
    "reject_reason",
]

RejectionCode = Literal[
    "malformed_json",
    "not_an_object",
    "missing_schema",
    "unknown_schema",
    "not_an_input",
    "invalid_field",
    "not_canonical",
    "signature_missing",
    "unknown_key",
    "wrong_role",
    "unsupported_alg",
    "bad_signature",
    "bad_batch_signature",
    "nested_batch",
    "empty_batch",
    "conflicting_duplicate",
    "conflicting_registration",
    "late_registration",
    "unknown_spec",
    "unknown_escalation",
    "mission_terminated",
    "message_too_large",
    "too_deep",
    "duplicate_key",
    "number_out_of_range",
    "string_too_long",
    "too_many_items",
    "mixed_batch",
    "implausible_time",
    "review_out_of_order",
    "resume_without_cause",
    "reviewer_out_of_scope",
    "reviewer_not_key_holder",
    "second_reviewer_required",
    "internal_error",
]

REJECTION_TEMPLATES: dict[str, str] = {
    "malformed_json": "the line is not valid JSON: {detail}",
    "not_an_object": "a record must be a JSON object, this is a JSON {detail}",
    "missing_schema": "the record has no \"schema\" field naming its kind and version",
    "unknown_schema": "schema {detail} is not one missionwatch accepts",
    "not_an_input": "{detail} is a record missionwatch emits; it is not accepted as input",
    "invalid_field": "{detail}",
    "not_canonical": "the record has no RFC 8785 canonical form, so it cannot be hashed: {detail}",
    "signature_missing": "the record is not signed (pass --allow-unsigned to accept unsigned input)",
    "unknown_key": "signing key {detail} is not in the keyring",
    "wrong_role": "{detail}",
    "unsupported_alg": "signature algorithm {detail} is not supported; use ed25519",
    "bad_signature": "the signature by key {detail} does not verify: the record was altered or signed by another key",
    "bad_batch_signature": "the batch envelope's signature by key {detail} does not verify; every item of the batch is rejected",
    "nested_batch": "a batch envelope may not contain another batch envelope",
    "empty_batch": "the batch envelope has no items",
    "conflicting_duplicate": "{detail}",
    "conflicting_registration": "mission {detail} is already registered with different content",
    "late_registration": "{detail}",
    "unknown_spec": "{detail}",
    "unknown_escalation": "{detail}",
    "mission_terminated": "mission {detail} was terminated by a review; no further reviews are taken",
    "message_too_large": "{detail}",
    "too_deep": "{detail}",
    "duplicate_key": "the JSON is ambiguous: {detail} (parsers disagree on which value counts)",
    "number_out_of_range": "{detail}",
    "string_too_long": "{detail}",
    "too_many_items": "the batch envelope has {detail}",
    "mixed_batch": "a batch envelope must carry the records of one mission (it is keyed, and so "
                   "partitioned, by mission); this one names {detail}",
    "implausible_time": "{detail}",
    "review_out_of_order": "{detail}",
    "resume_without_cause": "{detail}",
    "reviewer_out_of_scope": "{detail}",
    "reviewer_not_key_holder": "{detail}",
    "second_reviewer_required": "{detail}",
    "internal_error": "the monitor failed on this message ({detail}); it was skipped and the monitor "
                      "went on; please report it",
}

EscalationCode = Literal[
    "fairness_gap",
    "fairness_ratio",
    "new_template",
    "new_action_type",
    "new_cohort",
    "mix_shift",
    "followup_pressure",
    "risk_elevated",
    "hard_limit",
    "cohort_integrity",
]

ESCALATION_TEMPLATES: dict[str, str] = {
    "fairness_gap": (
        "{metric_label} for {cohort} is {estimate} against {reference_value} for {reference}: "
        "a gap of {gap} (interval {lo} to {hi}) lies wholly beyond the allowed {threshold}."
    ),
    "fairness_ratio": (
        "{metric_label} for {cohort} is {estimate} against {reference_value} for {reference}: "
        "a ratio of {ratio}, wholly beyond the allowed ratio {threshold} at {confidence} confidence."
    ),
    "new_template": "The agent started using template {value}, not seen in the mission's baseline.",
    "new_action_type": "The agent started taking {value} actions, not seen in the mission's baseline.",
    "new_cohort": "The agent started targeting {value}, a cohort not seen in the mission's baseline.",
    "mix_shift": (
        "The mix of {what} has shifted from the baseline: {value} is now {share} of recent actions "
        "against {baseline_share} in the baseline (evidence {statistic} over the alarm level {level})."
    ),
    "followup_pressure": (
        "Follow-up pressure on {cohort} is rising: {share} of its recent actions are follow-ups against "
        "{baseline_share} in the baseline (evidence {statistic} over the alarm level {level})."
    ),
    "risk_elevated": (
        "{metric_label} is {value} against a baseline of {baseline}, {ratio} times the baseline and "
        "beyond the allowed {threshold} times."
    ),
    "hard_limit": "{metric_label} for {cohort} is {value}, past the hard limit of {limit} set by the spec.",
    "cohort_integrity": (
        "The cohort attribute {dimension} has values the spec does not expect ({problem}): {values}. "
        "Check the gateway's cohort data; these values are kept apart and never crowd out real cohorts."
    ),
}


def reject_reason(code: RejectionCode, detail: Any = "") -> str:
    return REJECTION_TEMPLATES[code].format(detail=detail)


def escalation_reason(code: EscalationCode, **fields: Any) -> str:
    return ESCALATION_TEMPLATES[code].format(**fields)


def _check_complete() -> None:
    assert set(get_args(RejectionCode)) == set(REJECTION_TEMPLATES)
    assert set(get_args(EscalationCode)) == set(ESCALATION_TEMPLATES)


_check_complete()
