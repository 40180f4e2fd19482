"""Detector specs: `detectors/<name>.toml` parsed into validated, frozen models.

An invalid spec is refused with `SpecError`, whose message names the file, the
field and the reason. `spec_version` is `sha256:` + the SHA-256 of the file's bytes.
The README documents every field; `tests/test_spec.py` checks it does.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "CadenceSpec",
    "FairnessRule",
    "LimitRule",
    "MetricSpec",
    "RiskRule",
    "ShiftSpec",
    "Spec",
    "SpecError",
    "SpecRegistry",
    "TransparencySpec",
    "load_spec",
    "normalize_value",
    "parse_duration",
]

Severity = Literal["report", "review", "pause"]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:+-]+$")]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


_INVISIBLE = {"Cf", "Cc", "Cs", "Co", "Cn"}


@functools.lru_cache(maxsize=8192)
def normalize_value(value: str, case: str = "preserve") -> str:
    """A cohort value as the monitor counts it: Unicode NFKC (so full-width '６５+' is '65+'),
    format and control characters removed (zero-width spaces, bidi marks), white space
    trimmed and collapsed to one space; lower-cased when `case` is 'lower'."""
    text = " ".join(unicodedata.normalize("NFKC", value).split())
    if not text.isascii() or not text.isprintable():
        text = " ".join("".join(c for c in text if unicodedata.category(c) not in _INVISIBLE).split())
    return text.lower() if case == "lower" else text


class SpecError(ValueError):
    """A spec that cannot be used: the message names the file, the field and why."""


def parse_duration(text: str) -> float:
    """'90s', '15m', '1h', '1d', '2w' -> seconds."""
    m = _DURATION.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 30m, 1h or 1d")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Meta(_Model):
    name: Name
    description: str = ""
    owner: str = ""
    escalation_path: list[str] = []
    skew: str = "1d"
    """Event times more than this before a registered mission's started_at are implausible
    and rejected."""
    horizon: str = "400d"
    """Event times more than this after the mission's start are implausible and rejected (an
    unregistered mission: more than this either side of its first record's time)."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Chance, over an unbounded stream, that a mission whose true gaps are all within
    the thresholds is ever escalated by a fairness rule (shared by all rules)."""
    bucket: str = "1h"
    """Width of the ledger's event-time buckets."""
    open: str = "2d"
    """How long ledger buckets stay open in memory: a bucket starting more than this before
    the mission's newest is sealed, handed to the ledger's writer and dropped (a later record
    for it opens a new part, which the writer adds)."""
    resume_reviewers: int = Field(1, ge=1, le=5)
    """Distinct reviewers (by name and by key) whose `resume` it takes to release a mission
    paused by a pause-severity escalation; each earlier one is recorded as an approval."""
    intervals: Literal["asymptotic", "strict"] = "asymptotic"
    """Fairness intervals: 'asymptotic' (normal mixture with a running variance; the
    guarantee holds as samples grow) or 'strict' (betting confidence sequences, exact
    at every sample size, for 0/1 metrics only; wider, and slower per update)."""

    @model_validator(mode="after")
    def _bucket(self) -> Meta:
        for d in (self.bucket, self.open, self.skew, self.horizon):
            parse_duration(d)
        return self


class CohortSpec(_Model):
    keys: list[Name] = []
    """Cohort attributes the ledger breaks counts down by. A name joining two or more other
    attributes of keys or protected with '+' (e.g. 'segment+tenure_band') is their
    intersection: its value is theirs joined with '+' ('smb+m4-12'), computed for every
    record that has them all (a record's own attribute of that name is ignored)."""
    protected: list[Name] = []
    """Protected-class proxies: fairness rules compare their cohorts (intersections as in keys)."""
    max_cohorts: int = Field(8, ge=2, le=1000)
    """Cohorts per protected proxy that share the alpha budget; later ones are reported, not judged."""
    min_samples: int = Field(30, ge=2)
    """A cohort with fewer observations of a metric is 'too_small' and never judged."""
    case: Literal["preserve", "lower"] = "preserve"
    """Cohort values are normalised (Unicode NFKC, invisible format characters removed,
    white space trimmed and collapsed); 'lower' also lower-cases them."""
    values: dict[Name, list[Annotated[str, Field(min_length=1, max_length=256)]]] = {}
    """Declared values per cohort attribute: any other value of that attribute is kept
    apart as '(undeclared)' and raises a cohort_integrity escalation."""
    max_values: int = Field(64, ge=2, le=10_000)
    """Distinct values kept per cohort attribute; further values are counted together
    as '(other)' (and raise a cohort_integrity escalation)."""
    integrity: Severity = "review"
    """Severity of cohort_integrity escalations."""

    @model_validator(mode="after")
    def _values(self) -> CohortSpec:
        plain = {d for d in [*self.keys, *self.protected] if "+" not in d}
        for dim in [*self.keys, *self.protected]:
            parts = dim.split("+")
            if len(parts) > 1 and (len(set(parts)) != len(parts) or not set(parts) <= plain):
                raise ValueError(f"{dim!r} joins attributes with '+': an intersection must join two or more "
                                 "different attributes, each itself one of cohorts.keys or cohorts.protected "
                                 f"(plain ones: {', '.join(sorted(plain)) or 'none'})")
        for dim, vals in self.values.items():
            if dim not in self.keys and dim not in self.protected:
                raise ValueError(f"values.{dim}: {dim!r} is not one of cohorts.keys or cohorts.protected")
            normal = [normalize_value(v, self.case) for v in vals]
            if len(set(normal)) != len(normal):
                raise ValueError(f"values.{dim} repeats a value once normalised")
            if dim in self.protected and len(vals) > self.max_cohorts:
                raise ValueError(f"values.{dim} declares {len(vals)} values, more than max_cohorts "
                                 f"({self.max_cohorts}): every declared cohort of a protected proxy "
                                 "must have a place to be judged")
        return self

    def intersections(self) -> dict[str, tuple[str, ...]]:
        """Each intersection of keys and protected, with the attributes it joins."""
        return {d: tuple(d.split("+")) for d in [*self.keys, *self.protected] if "+" in d}

    def normal_values(self, dim: str) -> frozenset[str] | None:
        vals = self.values.get(dim)
        return None if vals is None else frozenset(normalize_value(v, self.case) for v in vals)


class ActionsSpec(_Model):
    types: list[Name] = []
    """The action types the mission is expected to take (empty: any)."""
    contact: list[Name] = []
    """Action types that count as contacting a subject (empty: every action)."""
    followup: list[Name] = []
    """Action types that count as follow-ups, for follow-up pressure."""
    template_attribute: str = "template"
    """The attribute that names the message template."""


class OutcomesSpec(_Model):
    types: list[Name] = []
    within: str | None = None
    """The longest an outcome takes to follow its action (e.g. '3d'). With it, outcomes that
    name no action (`follows` is optional) are compared with the baseline through isolated
    contacts (core/isolation.py); without it, a risk signal whose outcomes mostly name no
    action is 'unavailable'."""

    @model_validator(mode="after")
    def _within(self) -> OutcomesSpec:
        if self.within is not None:
            parse_duration(self.within)
        return self


class TacticsSpec(_Model):
    labels: dict[str, Annotated[str, Field(min_length=1, max_length=120)]] = {}
    """Words for tactics, keyed by `action_type+template` or by `action_type`. A tactic takes
    its own label, else its action type's with the template in brackets ('emails
    (urgent-last-chance)'), else is shown by its key."""
    share: float = Field(0.6, gt=0, le=1)
    """Receipts list as `tactics` the fewest labelled tactics that together make up at least
    this share of the recent window's actions."""
    lift: float = Field(1.25, gt=1)
    """Receipts list in `cohort_concentration` each cohort whose share of the recent
    window's contact actions is at least this many times its share of the mission's
    contacted subjects (with at least `cohorts.min_samples` of those actions)."""


class BaselineSpec(_Model):
    actions: int = Field(1000, ge=10)
    """The mission's first N actions form its frozen baseline."""


class CadenceSpec(_Model):
    actions: int = Field(1000, ge=1)
    """A strategy receipt after every N accepted actions of a mission."""
    every: str | None = None
    """And one whenever this much event time has passed since the last (e.g. '1d')."""

    @model_validator(mode="after")
    def _every(self) -> CadenceSpec:
        if self.every is not None:
            parse_duration(self.every)
        return self


class MetricSpec(_Model):
    name: Name
    label: str = ""
    per: Literal["action", "subject"]
    """'action': over matching actions (a mean, or a total: `aggregate`); 'subject': a mean over
    contacted subjects."""
    actions: list[Name] = []
    """per = 'action': the action types observed (empty: all)."""
    attribute: str | None = None
    """per = 'action': the numeric attribute averaged (aggregate = 'sum': totalled)."""
    decisions: list[Literal["allowed", "denied", "escalated", "revoked", "overridden"]] = []
    """per = 'action': the value is 1 when the decision is one of these, else 0 (aggregate =
    'count': only actions with one of these decisions are counted)."""
    count_actions: list[Name] = []
    """per = 'subject': actions of these types are counted per contacted subject."""
    count_outcomes: list[Name] = []
    """per = 'subject': outcomes of these types are counted per contacted subject."""
    aggregate: Literal["mean", "sum", "count"] = "mean"
    """'mean'; or, per = 'action' only, a total that grows with the mission: 'sum' (of
    `attribute` over matching actions) or 'count' (of matching actions; with `decisions`, of
    those whose decision is one of them). Limits compare the running total; risk signals its
    rate per action of the mission; fairness rules take means only."""

    @field_validator("aggregate")
    @classmethod
    def _aggregate(cls, v: str, info: ValidationInfo) -> str:
        """A total's shape, checked here so that its error points at the `aggregate` line."""
        d = info.data
        if v == "mean":
            return v
        if d.get("per") == "subject":
            raise ValueError(f"aggregate = {v!r} needs per = 'action': a per-subject metric is a mean of "
                             "counts per contacted subject (to count actions in total: per = 'action', "
                             "aggregate = 'count')")
        if v == "sum" and d.get("decisions"):
            raise ValueError("aggregate = 'sum' totals an attribute and takes no decisions (to count the "
                             "actions with those decisions: aggregate = 'count')")
        if v == "sum" and "attribute" in d and d["attribute"] is None:
            raise ValueError("aggregate = 'sum' needs attribute: the numeric attribute totalled")
        if v == "count" and d.get("attribute") is not None:
            raise ValueError("aggregate = 'count' counts matching actions and takes no attribute (to total "
                             "the attribute: aggregate = 'sum')")
        return v

    @model_validator(mode="after")
    def _shape(self) -> MetricSpec:
        if self.per == "action":
            if self.aggregate == "mean" and (self.attribute is None) == (not self.decisions):
                raise ValueError("a per-action metric takes exactly one of attribute or decisions (an "
                                 "aggregate = 'count' metric takes decisions or neither)")
            if self.count_actions or self.count_outcomes:
                raise ValueError("count_actions and count_outcomes belong to per = 'subject' metrics")
        else:
            if bool(self.count_actions) == bool(self.count_outcomes):
                raise ValueError(
                    "a per-subject metric takes exactly one of count_actions or count_outcomes"
                )
            if self.attribute is not None or self.decisions or self.actions:
                raise ValueError("actions, attribute and decisions belong to per = 'action' metrics")
        return self

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def total(self) -> bool:
        """A sum or count: a total that grows with the mission, not a mean."""
        return self.aggregate != "mean"

    def value(self, decision: str, numbers: dict[str, float]) -> float | None:
        """A per-action metric's observation of a matching action with this `decision` and these
        numeric attributes: the attribute (None when the action lacks it), else 0/1 (a count
        without decisions: 1)."""
        if self.attribute is not None:
            return numbers.get(self.attribute)
        return float(not self.decisions or decision in self.decisions)


class FairnessRule(_Model):
    metric: Name
    harm: Literal["lower", "higher", "both"]
    """A cohort is harmed when its value is lower (or higher) than the reference's."""
    max_gap: float | None = Field(None, gt=0)
    """Escalate when the cohort's gap to the reference, in the harm direction, is surely beyond this."""
    min_ratio: float | None = Field(None, gt=0, lt=1)
    """Escalate when cohort / reference is surely below this (four-fifths rule: 0.8)."""
    max_ratio: float | None = Field(None, gt=1)
    """Escalate when cohort / reference is surely above this."""
    reference: str = "rest"
    """'rest' (all other cohorts of the proxy together), 'largest', or a cohort value."""
    severity: Severity = "review"

    @model_validator(mode="after")
    def _thresholds(self) -> FairnessRule:
        if self.max_gap is None and self.min_ratio is None and self.max_ratio is None:
            raise ValueError("a fairness rule needs max_gap, min_ratio or max_ratio")
        if self.min_ratio is not None and self.harm == "higher":
            raise ValueError("min_ratio judges harm = 'lower' or 'both'")
        if self.max_ratio is not None and self.harm == "lower":
            raise ValueError("max_ratio judges harm = 'higher' or 'both'")
        return self


class ShiftSpec(_Model):
    alpha: float = Field(0.0001, gt=0, lt=1)
    """Each shift detector raises at most one false alarm per 1/alpha receipts on average."""
    new_template: Severity = "review"
    new_action_type: Severity = "review"
    new_cohort: Severity = "report"
    mix: Severity = "review"
    """A change in the mix of action types or templates."""
    mix_rises: list[float] = [1.5, 2.0, 3.0]
    """Relative rises in an action type's or template's share the mix detectors are tuned to."""
    followup: Severity = "review"
    followup_rises: list[float] = [1.5, 2.0, 3.0]
    """Relative rises in the follow-up share the pressure detector is tuned to."""

    @model_validator(mode="after")
    def _rises(self) -> ShiftSpec:
        for name in ("followup_rises", "mix_rises"):
            rises = getattr(self, name)
            if not rises or any(r <= 1 for r in rises):
                raise ValueError(f"{name} must be a non-empty list of numbers above 1")
        return self


class RiskRule(_Model):
    metric: Name
    statistic: Literal["mean", "variance"] = "mean"
    max_ratio: float = Field(1.5, gt=1)
    """'elevated' when the value is surely above max_ratio times the baseline."""
    severity: Severity = "review"


class LimitRule(_Model):
    metric: Name
    scope: Literal["mission", "cohort"] = "mission"
    """'mission': the whole mission; 'cohort': any cohort of any cohort key or protected proxy."""
    above: float | None = None
    below: float | None = None
    min_samples: int = Field(30, ge=1)
    severity: Severity = "pause"

    @model_validator(mode="after")
    def _one(self) -> LimitRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("a limit takes exactly one of above or below")
        return self


class TransparencySpec(_Model):
    every: int = Field(16, ge=1, le=100_000)
    """A signed checkpoint of the mission's log after every N out records, and after every
    control record (missionwatch.tlog; CONTRACT 1.9)."""


class Spec(_Model):
    spec: Meta
    cohorts: CohortSpec = CohortSpec()
    actions: ActionsSpec = ActionsSpec()
    outcomes: OutcomesSpec = OutcomesSpec()
    tactics: TacticsSpec = TacticsSpec()
    baseline: BaselineSpec = BaselineSpec()
    cadence: CadenceSpec = CadenceSpec()
    metrics: list[MetricSpec] = []
    fairness: list[FairnessRule] = []
    shift: ShiftSpec = ShiftSpec()
    risk: list[RiskRule] = []
    limits: list[LimitRule] = []
    transparency: TransparencySpec = TransparencySpec()
    version: str = Field("", exclude=True)
    """sha256 of the spec file, set by load_spec."""

    @model_validator(mode="after")
    def _references(self) -> Spec:
        names = [m.name for m in self.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric names must be unique, repeated: {', '.join(dupes)}")
        refs: list[tuple[str, list[str]]] = [
            ("fairness", [r.metric for r in self.fairness]), ("risk", [r.metric for r in self.risk]),
            ("limits", [r.metric for r in self.limits])]
        for section, metrics in refs:
            for i, metric in enumerate(metrics):
                if metric not in names:
                    raise ValueError(
                        f"{section}[{i}].metric {metric!r} is not a metric of this spec "
                        f"(known: {', '.join(names) or 'none'})"
                    )
        self._declared()
        overlap = set(self.cohorts.keys) & set(self.cohorts.protected)
        if overlap:
            raise ValueError(
                f"cohorts.keys and cohorts.protected overlap: {', '.join(sorted(overlap))}"
            )
        self._totals()
        if self.spec.intervals == "strict":
            for i, fr in enumerate(self.fairness):
                m = self.metric(fr.metric)
                if m.per != "action" or not m.decisions:
                    raise ValueError(
                        f"fairness[{i}].metric {fr.metric!r}: intervals = 'strict' needs a 0/1 metric "
                        "(per = 'action' with decisions); exact intervals need bounded, final observations"
                    )
        for rule in self.risk:
            if rule.statistic == "variance" and self.metric(rule.metric).per != "action":
                raise ValueError(f"risk on {rule.metric!r}: variance needs a per-action metric")
        return self

    def _totals(self) -> None:
        """What a total (aggregate = 'sum' or 'count') cannot be used for: a fairness rule (it
        compares cohort means), a variance risk signal, a `below` limit on a count (which only grows)."""
        for i, fr in enumerate(self.fairness):
            m = self.metric(fr.metric)
            if m.total:
                raise ValueError(f"fairness[{i}].metric {m.name!r}: fairness compares means, and metric {m.name!r} "
                                 f"aggregates as {m.aggregate} (a total grows with each cohort's size): compare a "
                                 "mean instead, e.g. aggregate = 'mean' with decisions for a rate")
        for i, rr in enumerate(self.risk):
            m = self.metric(rr.metric)
            if m.total and rr.statistic == "variance":
                raise ValueError(f"risk[{i}].statistic: variance needs a mean, and metric {m.name!r} aggregates as "
                                 f"{m.aggregate} (its risk signal compares its rate per action of the mission: "
                                 "statistic = 'mean')")
        for i, lr in enumerate(self.limits):
            m = self.metric(lr.metric)
            if m.aggregate == "count" and lr.below is not None:
                raise ValueError(f"limits[{i}].below: metric {m.name!r} aggregates as count, which only grows "
                                 "(a count below a bound would breach at the first action): a limit on it "
                                 "takes above")

    def _declared(self) -> None:
        """Every action and outcome type a metric or the actions table names is declared (when the
        spec declares types at all): a misspelt one would silently never see data."""
        acts, outs = set(self.actions.types), set(self.outcomes.types)
        named: list[tuple[str, list[str], set[str], str]] = [
            ("actions.contact", self.actions.contact, acts, "actions.types"),
            ("actions.followup", self.actions.followup, acts, "actions.types")]
        for i, m in enumerate(self.metrics):
            named += [(f"metrics[{i}].actions", m.actions, acts, "actions.types"),
                      (f"metrics[{i}].count_actions", m.count_actions, acts, "actions.types"),
                      (f"metrics[{i}].count_outcomes", m.count_outcomes, outs, "outcomes.types")]
        for where, names, declared, table in named:
            unknown = [n for n in names if declared and n not in declared]
            if unknown:
                raise ValueError(f"{where} names {unknown[0]!r}, which {table} does not declare "
                                 f"({', '.join(sorted(declared))}); a misspelt type never sees data")

    def unseen(self, stream: Iterable[dict[str, Any]]) -> list[str]:
        """What the metrics name (action types, outcome types, attributes) that `stream`, an
        example of the input, never contains: one warning each."""
        acts: set[str] = set()
        outs: set[str] = set()
        attrs: set[tuple[str, str]] = set()
        for rec in stream:
            if "action_type" in rec:
                acts.add(str(rec["action_type"]))
                attrs.update((str(rec["action_type"]), str(k)) for k in (rec.get("attributes") or {}))
            elif "outcome_type" in rec:
                outs.add(str(rec["outcome_type"]))
        warnings = []
        for i, m in enumerate(self.metrics):
            for t in [*m.actions, *m.count_actions]:
                if t not in acts:
                    warnings.append(f"metrics[{i}] ({m.name}): no action of type {t!r} in the example stream")
            for t in m.count_outcomes:
                if t not in outs:
                    warnings.append(f"metrics[{i}] ({m.name}): no outcome of type {t!r} in the example stream")
            if m.attribute is not None and not any(a == m.attribute and (not m.actions or t in m.actions)
                                                   for t, a in attrs):
                warnings.append(f"metrics[{i}] ({m.name}): no action carries attribute {m.attribute!r} "
                                "in the example stream")
        return warnings

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def bucket_seconds(self) -> float:
        return parse_duration(self.spec.bucket)

    @property
    def open_seconds(self) -> float:
        return parse_duration(self.spec.open)


def dotted(loc: tuple[Any, ...]) -> str:
    """A field's path in the one style errors use: `fairness[0].max_gap`, `tactics.labels`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_.+-]+(?:\s*\.\s*(?:"[^"]*"|[A-Za-z0-9_+-]+))*)\s*=')


def _key_parts(key: str) -> list[str]:
    return [k.strip().strip('"') for k in re.findall(r'"[^"]*"|[^.]+', key)]


def toml_lines(text: str) -> dict[str, int]:
    """Where each table and key of a TOML document is, by `dotted` path: {path: line number}.
    A table array's n-th table is `name[n]`. Good enough to point at what an error names."""
    lines: dict[str, int] = {}
    arrays: dict[str, int] = {}
    table = ""
    for no, raw in enumerate(text.splitlines(), 1):
        head = _HEADER.match(raw)
        if head:
            name = ".".join(_key_parts(head.group(2)))
            if head.group(1) == "[[":
                arrays[name] = arrays.get(name, -1) + 1
                table = f"{name}[{arrays[name]}]"
            else:
                table = name
            lines.setdefault(table, no)
            continue
        key = _KEY.match(raw)
        if key:
            path = ".".join([table, *_key_parts(key.group(1))] if table else _key_parts(key.group(1)))
            lines.setdefault(path, no)
    return lines


def _line_of(path: str, lines: dict[str, int]) -> int | None:
    """The line of `path`, else of the closest table or key above it that the file has."""
    while path:
        if path in lines:
            return lines[path]
        path = re.sub(r"(\[\d+\]|\.[^.\[\]]+|^[^.\[\]]+)$", "", path)
    return None


def _describe(path: str, exc: ValidationError, text: str = "") -> str:
    lines = toml_lines(text)
    parts = []
    for err in exc.errors(include_url=False):
        loc = dotted(tuple(err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "is not a known field (see the spec format in README.md)"
        elif err["type"] == "missing":
            msg = "is required"
        named = loc or (m.group(1) if (m := re.match(r"([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)+)\b", msg)) else "")
        line = _line_of(named, lines) if named else None
        where = f"line {line}: " if line else ""
        parts.append(f"{where}{loc}: {msg}" if loc else f"{where}{msg}")
    return f"{path}: " + "; ".join(parts)


def parse_spec(text: bytes, source: str) -> Spec:
    try:
        data: dict[str, Any] = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{source}: the file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML ({exc})") from None
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(source, exc, text.decode("utf-8"))) from None
    return spec.model_copy(update={"version": "sha256:" + hashlib.sha256(text).hexdigest()})


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror})") from None
    spec = parse_spec(text, str(path))
    if spec.name != path.stem:
        raise SpecError(
            f"{path}: spec.name: is {spec.name!r} but the file is named {path.stem}.toml; "
            "missions name a spec by its file name"
        )
    return spec


class SpecRegistry:
    """The specs of one directory, by name. `default` must be among them."""

    def __init__(self, specs: dict[str, Spec]) -> None:
        if "default" not in specs:
            raise SpecError("the specs directory has no default.toml (the spec for unregistered missions)")
        self.specs = specs

    @classmethod
    def load_dir(cls, directory: str | Path) -> SpecRegistry:
        directory = Path(directory)
        if not directory.is_dir():
            raise SpecError(f"{directory}: the specs directory does not exist")
        return cls({p.stem: load_spec(p) for p in sorted(directory.glob("*.toml"))})

    def get(self, name: str) -> Spec | None:
        return self.specs.get(name)

    @property
    def default(self) -> Spec:
        return self.specs["default"]
