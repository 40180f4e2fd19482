"""What every table and column of the analysts' ledger means: the comments DuckDB carries
(`COMMENT ON`), and the tables of docs/ledger.md (`scripts/make_ledger_doc.py` writes them
from here, and a test keeps them equal)."""

from __future__ import annotations

__all__ = ["ATTRIBUTE_COLUMN", "COHORT_COLUMN", "COLUMNS", "TABLES"]

TABLES: dict[str, str] = {
    "missions": "One row per mission: its registration, spec, state and counts at the end of the input.",
    "actions": "One row per accepted action receipt (duplicates apart, in `duplicates`), in input order.",
    "outcomes": "One row per accepted outcome (duplicates apart), in input order.",
    "reviews": "One row per accepted review.",
    "strategy_receipts": "One row per strategy receipt the monitor issued (the whole record in `record`).",
    "escalations": "One row per escalation the monitor issued.",
    "controls": "One row per control signal (running, paused, terminated) the monitor issued.",
    "checkpoints": "One row per signed checkpoint of a mission's transparency log (README, \"The transparency "
                   "log\"): the tree of its first tree_size out records.",
    "duplicates": "One row per record seen again with the same id and content (counted, changes nothing).",
    "rejected": "One row per rejected input line or batch item, with the reason (rejected.jsonl's rows).",
    "ledger": "Exact counts per mission, event-time bucket, cohort and measure, in long form (a cell may "
              "span several rows, the parts of a late bucket: sum them).",
    "ledger_totals": "A view: `ledger` summed over buckets, per mission, dimension, cohort and measure.",
}

_TIME = "event time, TIMESTAMPTZ in UTC"
_HASH = "`sha256:` and the SHA-256 of the record's canonical bytes (CONTRACT 2)"
_LINE = ("where the record came from: its input line (1-based) in a replay's ledger, its offset in its "
         "partition of missionwatch.in in the live ledger")
_PARTITION = "its partition of missionwatch.in (live ledger); NULL in a replay's ledger"
_RECORD = "the whole out record, as JSON"
_SEQ = "its place in the mission's chain (0, 1, 2, ...)"
_PREV = "the hash of the mission's previous out record (NULL for seq 0)"

COLUMNS: dict[str, dict[str, str]] = {
    "missions": {
        "mission_id": "the mission", "registered": "whether a registration record named it",
        "spec": "the spec it is monitored under", "spec_version": "`sha256:` of that spec's file",
        "objective": "from the registration", "proxy_metric": "from the registration",
        "constraints": "from the registration, a JSON array", "owner": "from the registration",
        "human_delegate": "from the registration", "started_at": f"the registration's start, {_TIME}",
        "state": "running, paused or terminated at the end of the input",
        "cause": "the escalation or review behind the latest control signal",
        "review_status": "continue, continue_with_monitoring, needs_review, paused or terminated",
        "actions": "accepted actions (count)", "outcomes": "accepted outcomes (count)",
        "subjects": "distinct subjects acted on (count)", "duplicates": "records seen again (count)",
        "unattributed_outcomes": "outcomes whose subject no action had named by the end (count)",
    },
    "actions": {
        "receipt_id": "the gateway's id of the action", "mission_id": "the mission", "agent_id": "the acting agent",
        "action_type": "e.g. email.send, offer.discount", "decision": "the gateway's: allowed, denied, escalated, "
        "revoked or overridden", "subject_id": "the customer acted on", "occurred_at": _TIME,
        "template": "the message template (the spec's template_attribute), NULL when none",
        "policy_version": "the gateway's policy version, NULL when none",
        "attributes": "every attribute of the action, as JSON", "record_hash": _HASH,
        "batch_hash": "the hash of the batch envelope it came in, NULL when it came alone",
        "key_id": "the key that signed it (or its envelope)", "line": _LINE, "partition": _PARTITION,
    },
    "outcomes": {
        "outcome_id": "the gateway's id of the outcome", "mission_id": "the mission", "subject_id": "the customer",
        "outcome_type": "e.g. complaint, churn, renewal", "value": "its value (1 when the record gives none)",
        "occurred_at": _TIME, "follows": "the receipt_id of the action it follows, when the gateway named it "
        "(join to actions.receipt_id); NULL otherwise",
        "attributed": "whether its cohort columns are known: its own cohort, else its subject's "
        "(false when neither is known by the end)",
        "record_hash": _HASH, "batch_hash": "the hash of its batch envelope, NULL when it came alone",
        "key_id": "the key that signed it (or its envelope)", "line": _LINE, "partition": _PARTITION,
    },
    "reviews": {
        "review_id": "the reviewer's id of the review", "mission_id": "the mission",
        "escalation_id": "the escalation (or pausing review) it answers, NULL when none",
        "reviewer": "who decided, e.g. user:lee.risk", "decision": "acknowledge, resume, pause or terminate",
        "note": "why, in the reviewer's words", "occurred_at": _TIME, "record_hash": _HASH,
        "key_id": "the reviewer key that signed it", "line": _LINE, "partition": _PARTITION,
    },
    "strategy_receipts": {
        "receipt_id": "sr-<mission>-<seq>", "mission_id": "the mission", "seq": _SEQ,
        "issued_at": f"when it was issued, {_TIME}", "review_status": "as in `missions`",
        "state": "the mission's state when issued", "current_tactic_cluster": "the most frequent tactic of its window",
        "cohorts_affected": "the cohorts flagged when issued, as a JSON array",
        "window_actions": "actions since the previous receipt (count)", "hash": _HASH, "prev_hash": _PREV,
        "record": _RECORD,
    },
    "escalations": {
        "escalation_id": "esc-<mission>-<seq>", "mission_id": "the mission",
        "issued_at": f"when it was issued, {_TIME}", "severity": "review or pause",
        "detector": "the detector that raised it, e.g. fairness:discount_rate", "code": "CONTRACT 11's code",
        "reason": "the reason, in words", "triggered_by": "the receipt_id or outcome_id that tipped it",
        "evidence": "the numbers behind it, as JSON", "hash": _HASH, "prev_hash": _PREV, "record": _RECORD,
        "seq": _SEQ,
    },
    "controls": {
        "mission_id": "the mission", "issued_at": f"when it was issued, {_TIME}",
        "state": "running, paused or terminated", "cause": "the escalation or review behind it", "hash": _HASH,
        "prev_hash": _PREV, "record": _RECORD, "seq": _SEQ,
    },
    "checkpoints": {
        "mission_id": "the mission", "tree_size": "how many of the mission's out records (seq 0 to tree_size - 1) "
        "the tree holds", "root_hash": "the RFC 9162 root of that tree, hex",
        "issued_at": f"the issued_at of its last record, {_TIME}", "origin": "the log's origin line: "
        "missionwatch/<monitor key id>/<mission id, percent-encoded>", "note": "the checkpoint as a C2SP "
        "signed note (what an auditor keeps and witnesses cosign)", "hash": _HASH, "record": _RECORD,
    },
    "duplicates": {
        "kind": "action, outcome, review or mission", "id": "the record's id", "mission_id": "the mission",
        "record_hash": _HASH, "line": _LINE, "partition": _PARTITION,
    },
    "rejected": {
        "line": _LINE, "partition": _PARTITION, "item": "the item's index in its batch envelope, NULL for a whole line",
        "code": "CONTRACT 10's rejection code", "reason": "why, in words",
        "record": "a bounded excerpt of what was rejected",
    },
    "ledger": {
        "mission_id": "the mission", "bucket_start": f"the bucket's start, {_TIME} (width: the spec's bucket)",
        "dimension": "a cohort attribute (e.g. age_band), an intersection (segment+tenure_band) or * for all",
        "cohort": "its value (* for all; (none) for records without the attribute)",
        "measure": "actions, not_allowed, contacted_subjects (subjects contacted for the first time in the "
                   "mission, in the bucket of that first contact), type:<action type>, decision:<decision>, "
                   "template:<template>, "
                   "attr:<action type>:<attribute>:n|sum|sumsq, outcome:<type> (count), outcome:<type>:value (sum)",
        "value": "the count or sum",
    },
    "ledger_totals": {
        "mission_id": "the mission", "dimension": "as in `ledger`", "cohort": "as in `ledger`",
        "measure": "as in `ledger` (contacted_subjects: the distinct subjects the mission contacted)",
        "value": "the whole mission's sum",
    },
}
"""Per table, its fixed columns. `actions` and `outcomes` also have one column per cohort
attribute, and `actions` one per numeric attribute, named after them (COHORT_COLUMN,
ATTRIBUTE_COLUMN)."""

COHORT_COLUMN = "the subject's cohort attribute {name}, normalised (CONTRACT 9)"
ATTRIBUTE_COLUMN = "the numeric attribute {name} of the action, NULL where it has none"
