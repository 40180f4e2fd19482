"""The `missionwatch` command line. Thin: every command body parses its
arguments, calls the library, and prints. Exit codes: 0 ran, 1 a check failed
(verify, spec check), 2 unusable arguments or an invalid spec."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .signing import KeyError_, Keyring, Signer, load_private_key
from .spec import SpecError, SpecRegistry, load_spec

if TYPE_CHECKING:
    from .admission import Limits

app = typer.Typer(
    name="missionwatch",
    help="Mission-level behavioural monitor for AI agents: ledger action receipts, judge fairness "
    "and strategy shifts per cohort, emit signed strategy receipts, escalations and pause signals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
spec_app = typer.Typer(help="Work with detector specs (detectors/*.toml).", no_args_is_help=True)
app.add_typer(spec_app, name="spec")
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


def default_specs_dir() -> Path:
    """./detectors if present, else the detectors/ of the source tree this package runs from."""
    here = Path("detectors")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "detectors"


def _load_specs(specs: Path | None) -> SpecRegistry:
    try:
        return SpecRegistry.load_dir(specs or default_specs_dir())
    except SpecError as exc:
        raise _fail(str(exc)) from None


LedgerOpt = Annotated[bool | None, typer.Option(
    "--ledger/--no-ledger", help="Keep the analysts' live ledger in DATA/ledger, read by `missionwatch sql "
    "--data` (without it, that reads the out records only). Default: kept.")]
LedgerEveryOpt = Annotated[float | None, typer.Option(
    help="Seconds between the live ledger's commits: how far behind the stream analysts read. Default 5.")]
CheckpointEveryOpt = Annotated[float | None, typer.Option(
    help="Seconds between checkpoints of each partition's state (DATA/checkpoints): a restart replays only "
    "the log after them. 0: none. Default 60.")]
ViewTokenOpt = Annotated[str | None, typer.Option(
    help="Token the risk console asks before showing anything (a reviewer token also opens it). "
    "Default: viewing is open.")]
DashboardsOpt = Annotated[Path | None, typer.Option(
    help="Directory of the console's dashboard files (*.toml). Default: ./dashboards, else the source tree's.")]
ReviewersOpt = Annotated[Path | None, typer.Option(
    help="Reviewers file of the console: reviewer tokens (their SHA-256) and the keys it signs their reviews "
    "with. Default: the console is read-only.")]
SpecsOpt = Annotated[Path | None, typer.Option("--specs", help="Directory of detector specs (*.toml). "
                                               "Default: ./detectors.")]

# The admission limits (admission.Limits), options of `run` and `replay`; a message or record
# beyond one is rejected with its code (README, "Rejection codes").
MaxMessageBytes = Annotated[int | None, typer.Option(help="Longest message (record or batch envelope), "
                                                     "in bytes. Default 8388608 (8 MiB).")]
MaxRecordBytes = Annotated[int | None, typer.Option(help="Longest record or batch item, in bytes of its "
                                                    "canonical JSON. Default 65536.")]
MaxDepth = Annotated[int | None, typer.Option(help="Deepest nesting of arrays and objects. Default 32.")]
MaxStringChars = Annotated[int | None, typer.Option(help="Longest string or key, in characters. Default 8192.")]
MaxNumberChars = Annotated[int | None, typer.Option(help="Longest number literal, in characters. Default 40.")]
MaxAbsNumber = Annotated[float | None, typer.Option(help="Largest magnitude of any number. Default 1e15.")]
MaxBatchItems = Annotated[int | None, typer.Option(help="Most items in one batch envelope. Default 10000.")]
ExcerptChars = Annotated[int | None, typer.Option(help="Characters of a rejected message or item that its "
                                                  "rejection keeps. Default 2048.")]


def _limits(arguments: dict[str, Any]) -> Limits:
    """`admission.Limits` from the limit options among a command's `arguments` (those not given
    keep their defaults)."""
    from pydantic import ValidationError

    from .admission import Limits

    try:
        return Limits(**{k: v for k, v in arguments.items() if k in Limits.model_fields and v is not None})
    except ValidationError as exc:
        raise _fail(f"limits: {exc}") from None


@app.command()
def replay(
    input: Annotated[Path, typer.Argument(help="JSON Lines file of in records, one per line.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write events.jsonl, "
                                          "rejected.jsonl and ledger.duckdb into.")],
    specs: SpecsOpt = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="Keyring JSON of the keys allowed to sign "
                                              "input (gate and reviewer roles).")] = None,
    signing_key: Annotated[Path | None, typer.Option(
        "--signing-key", help="Monitor private key (PEM, PKCS#8); its key_id is the file name without "
        ".pem. Default: an ephemeral key, its public half written to DIR/monitor-key.json.")] = None,
    allow_unsigned: Annotated[bool, typer.Option(
        "--allow-unsigned", help="Accept input records that carry no signature (a bad signature is "
        "still rejected).")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=0, help="Processes that check signatures ahead of the core (0: none, check "
        "in-process). Default: one per spare core, at most 4. The output is the same either way.")] = None,
    max_message_bytes: MaxMessageBytes = None, max_record_bytes: MaxRecordBytes = None, max_depth: MaxDepth = None,
    max_string_chars: MaxStringChars = None, max_number_chars: MaxNumberChars = None,
    max_abs_number: MaxAbsNumber = None, max_batch_items: MaxBatchItems = None, excerpt_chars: ExcerptChars = None,
    ledger: Annotated[bool, typer.Option(
        "--ledger/--no-ledger", help="Write ledger.duckdb (--no-ledger: only events.jsonl and "
        "rejected.jsonl, faster, in the memory the monitor itself needs; an older ledger.duckdb in "
        "DIR is removed).")] = True,
) -> None:
    """Run the monitoring core over a file, in file order, as the streaming service would."""
    from .monitor import Monitor
    from .replay import write_monitor_key

    if not input.is_file():
        raise _fail(f"{input}: no such input file")
    registry = _load_specs(specs)
    try:
        keyring = Keyring.load(keys) if keys else Keyring()
        signer = load_private_key(signing_key) if signing_key else None
    except KeyError_ as exc:
        raise _fail(str(exc)) from None
    if out_dir.exists() and not out_dir.is_dir():
        raise _fail(f"{out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    if signer is None:
        signer = Signer.generate("monitor-ephemeral")
        write_monitor_key(signer, out_dir / "monitor-key.json")
    if keys is None and not allow_unsigned:
        err.print("[yellow]warning:[/] no --keys given: every signed record will be rejected as "
                  "signed by an unknown key")
    monitor = Monitor(registry, signer=signer, keyring=keyring, allow_unsigned=allow_unsigned,
                      limits=_limits(locals()))
    result = _replay_with_progress(input, out_dir, monitor, workers=workers, ledger=ledger)
    err.print(
        f"{result.lines} lines: {result.n_accepted} accepted, {result.duplicates} duplicates, "
        f"{result.n_rejected} rejected; {result.n_events} out records for "
        f"{len(monitor.missions)} missions -> {out_dir}"
    )


def _replay_with_progress(input: Path, out_dir: Path, monitor: Any, *, workers: int | None,
                          ledger: bool) -> Any:
    """`replay_file`, with a progress bar on a terminal."""
    from .replay import replay_file

    if not err.is_terminal:
        return replay_file(input, out_dir, monitor, workers=workers, ledger=ledger)
    with _progress() as bar:
        task = bar.add_task(f"replaying {input.name}", total=input.stat().st_size)
        return replay_file(input, out_dir, monitor, progress=lambda n: bar.advance(task, n),
                           status=lambda s: bar.update(task, description=s), workers=workers, ledger=ledger)


def _wide() -> Console:
    """A console wide enough for a report's tables, even when output goes to a file or a pipe."""
    return Console(width=max(out.width, 160), highlight=False)


def _progress() -> Any:
    """A byte-counting progress bar on stderr when it is a terminal (silent otherwise)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    return Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                    TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal)


def _verify_inputs(events: Path, keys: Path, expect: Path | None) -> tuple[Keyring, dict[str, int] | None]:
    """The keyring and expectation `verify` needs, or exit 2 naming the file and the problem."""
    from .verify import ExpectError, load_expectation

    if not events.exists():
        raise _fail(f"{events}: no such file")
    if events.is_dir():
        raise _fail(f"{events}: is a directory, not an events file")
    try:
        keyring = Keyring.load(keys)
    except KeyError_ as exc:
        raise _fail(str(exc)) from None
    if all(role != "monitor" for _, role in keyring.keys.values()):
        raise _fail(f"{keys}: the keyring holds no monitor key, so no out record can verify")
    try:
        return keyring, load_expectation(expect) if expect is not None else None
    except ExpectError as exc:
        raise _fail(str(exc)) from None


@app.command()
def verify(
    events: Annotated[Path, typer.Argument(help="events.jsonl written by replay or the service.")],
    keys: Annotated[Path, typer.Option("--keys", help="Keyring JSON holding the monitor's public key.")],
    expect: Annotated[Path | None, typer.Option(
        "--expect", help="JSON object mapping mission_id to the last seq its chain must reach, as the "
        "status API answers seq or a checkpoint noted it. Fails when such a mission is missing from "
        "the file or its chain ends earlier. A lower bound (a snapshot taken earlier): records "
        "beyond it are fine.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object on stdout: ok, records, missions (mission_id to last "
        "seq), error.")] = False,
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="A file holding one checkpoint record as the monitor published it: fails, "
        "naming why, when the file's log was cut off, dropped, reordered or forked relative to it.")] = None,
    witness: Annotated[Path | None, typer.Option(
        "--witness", help="A witness's private key (PEM): when the file verifies against --checkpoint, "
        "print the checkpoint's note cosigned by it (C2SP tlog-cosignature).")] = None,
    witness_name: Annotated[str, typer.Option(help="The witness's key name in its cosignature.")] = "witness",
) -> None:
    """Check every hash, signature and per-mission chain of the monitor's out records, and every
    checkpoint of their transparency log, and list each mission's last seq. Exit 0 whole; 1
    broken, incomplete or empty; 2 unusable arguments. Records cut off the end of the file and
    deleted chains leave no trace in the chains: --checkpoint (or --expect) catches them."""
    from .transparency import load_checkpoint
    from .verify import verify_events

    keyring, expected = _verify_inputs(events, keys, expect)
    if witness is not None and checkpoint is None:
        raise _fail("--witness cosigns the checkpoint given with --checkpoint: name one")
    try:
        kept = load_checkpoint(checkpoint, keyring) if checkpoint is not None else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        report = verify_events(events, keyring, expected, kept)
    except OSError as exc:
        raise _fail(f"{events}: cannot be read ({exc.strerror})") from None
    if report.ok and kept is not None and witness is not None:
        _cosign(kept, witness, witness_name)
        return
    if as_json:
        print(json.dumps(report.to_json()), flush=True)
    elif report.ok:
        out.print(f"ok: {report.records} records in {len(report.missions)} mission chains verify",
                  markup=False)
        for mission, seq in sorted(report.missions.items()):
            out.print(f"  mission {mission!r} -> last seq {seq}", markup=False)
    if not report.ok:
        raise _fail(f"{events}: {report.error}", code=1)


def _cosign(kept: Any, witness: Path, name: str) -> None:
    """Print the checkpoint's note with the witness's cosignature added (time: now)."""
    import time

    from .tlog import cosign

    try:
        key = load_private_key(witness).key
        print(cosign(kept.note, name, key, int(time.time())).text(), end="", flush=True)
    except (OSError, ValueError) as exc:
        raise _fail(f"{witness}: {exc}") from None


@app.command()
def prove(
    record_hash: Annotated[str | None, typer.Argument(
        help="The `hash` of an out record (sha256:...): print its inclusion proof against its "
        "mission's latest checkpoint in --log.")] = None,
    log: Annotated[Path | None, typer.Option("--log", help="The events file (replay's events.jsonl, "
                                             "a DATA/out file, `missionwatch tail` output).")] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="Keyring JSON holding the monitor's public "
                                              "key: every checkpoint is checked against it.")] = None,
    consistency: Annotated[tuple[Path, Path] | None, typer.Option(
        "--consistency", help="OLD NEW: two files each holding a checkpoint record of one mission: print "
        "the proof that the older log is a prefix of the newer.")] = None,
    check: Annotated[Path | None, typer.Option(
        "--check", help="A proof this command printed: check it offline (needs --keys only).")] = None,
) -> None:
    """Transparency-log proofs (README, "The transparency log"): inclusion of a record, consistency
    of two checkpoints, or the check of a proof. Prints one JSON object. Exit 0 proved or
    checked; 1 it does not hold; 2 unusable arguments."""
    from .tlog import ProofError
    from .transparency import (
        check_proof,
        consistency_between,
        inclusion_of,
        load_checkpoint,
        read_log,
    )

    if keys is None:
        raise _fail("--keys: the keyring with the monitor's public key is needed to check checkpoints")
    keyring = _keyring(keys)
    try:
        if check is not None:
            said = check_proof(json.loads(check.read_bytes()), keyring)
            print(json.dumps({"ok": True, "holds": said}), flush=True)
            return
        if log is None or (record_hash is None) == (consistency is None):
            raise _fail("give RECORD_HASH or --consistency OLD NEW, with --log EVENTS (or --check PROOF)")
        read = read_log(log, keyring)
        if consistency is not None:
            old, new = (load_checkpoint(p, keyring) for p in consistency)
            answer = consistency_between(read.logs, old, new)
        else:
            rec = read.records.get(str(record_hash))
            if rec is None:
                raise _fail(f"{log}: no out record has the hash {record_hash}", code=1)
            answer = inclusion_of(read.logs, rec)
    except ProofError as exc:
        raise _fail(str(exc), code=1) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _fail(str(exc)) from None
    print(json.dumps(answer, ensure_ascii=False), flush=True)


def _keyring(keys: Path) -> Keyring:
    try:
        return Keyring.load(keys)
    except KeyError_ as exc:
        raise _fail(str(exc)) from None


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for receipts.jsonl, keyring.json "
                                          "and the gate-1, reviewer-1 and monitor-1 private keys.")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same campaign.")] = 7,
    actions: Annotated[int, typer.Option(min=1, help="Number of action receipts.")] = 20_000,
    subjects: Annotated[int, typer.Option(min=1, help="Number of distinct customers.")] = 5_000,
    mission_id: Annotated[str, typer.Option(help="The mission's id.")] = "retention-campaign-sim",
    change_at: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of the campaign after "
                                             "which time-varying behaviours start.")] = 0.5,
    discount_gap: Annotated[str | None, typer.Option(help="Plant a discount gap against a cohort, "
                                                     "e.g. age_band=65+ (an intersection: "
                                                     "segment=smb,tenure_band=m4-12).")] = None,
    discount_gap_factor: Annotated[float, typer.Option(help="That cohort's discount rate relative "
                                                       "to everyone else's.")] = 0.4,
    new_template: Annotated[str | None, typer.Option(help="Plant a new message template, e.g. "
                                                     "urgent-last-chance.")] = None,
    followup_rise: Annotated[str | None, typer.Option(help="Plant rising follow-ups on a cohort, "
                                                      "e.g. age_band=65+ (an intersection: "
                                                      "segment=smb,tenure_band=m4-12; every cohort: *).")] = None,
    complaint_spike: Annotated[float | None, typer.Option(help="Plant a complaint spike: complaints "
                                                          "multiply by this factor.")] = None,
    unregistered: Annotated[bool, typer.Option(help="Leave out the mission registration.")] = False,
    fixed_keys: Annotated[bool, typer.Option(help="Derive keys from the seed (byte-identical reruns; "
                                             "for tests and examples only).")] = False,
) -> None:
    """Write a seeded synthetic retention campaign, signed, with its keyring and keys."""
    from .sim import Campaign, write_campaign

    for name, value in (("--discount-gap", discount_gap), ("--followup-rise", followup_rise)):
        if value is not None and value != "*" and any("=" not in part or part.startswith("=")
                                                      for part in value.split(",")):
            raise _fail(f"{name} takes a cohort as attribute=value, e.g. age_band=65+, or several joined "
                        "by ',' for an intersection")
    c = Campaign(mission_id=mission_id, seed=seed, actions=actions, subjects=subjects,
                 change_at=change_at, discount_gap=discount_gap, discount_gap_factor=discount_gap_factor,
                 new_template=new_template, followup_rise=followup_rise, complaint_spike=complaint_spike,
                 register=not unregistered)
    paths = write_campaign(c, out_dir, seed_keys=fixed_keys)
    n = sum(1 for _ in paths["receipts"].open(encoding="utf-8"))
    err.print(f"wrote {n} records to {paths['receipts']}, keyring {paths['keyring']}, keys "
              f"{', '.join(str(paths[k]) for k in ('gate-1', 'reviewer-1', 'monitor-1'))}")


@spec_app.command("check")
def spec_check(
    files: Annotated[list[Path], typer.Argument(help="Spec files to check.")],
    stream: Annotated[Path | None, typer.Option(
        "--stream", help="An example input stream (JSON Lines): warn on each action type, outcome type or "
        "attribute a metric names that it never contains. Default: examples/<spec>/stream.jsonl beside "
        "the spec, if there is one.")] = None,
) -> None:
    """Validate detector specs; print each one's version, or exactly what is wrong (with the line)."""
    bad = 0
    for f in files:
        try:
            s = load_spec(f)
        except SpecError as exc:
            err.print(f"[bold red]invalid:[/] {escape(str(exc))}")
            bad += 1
            continue
        out.print(f"ok: {f} spec {s.name!r} version {s.version} ({len(s.metrics)} metrics, "
                  f"{len(s.fairness)} fairness rules, {len(s.risk)} risk signals, {len(s.limits)} limits)")
        example = stream or f.parent / "examples" / s.name / "stream.jsonl"
        if example.is_file():
            for w in s.unseen(_records(example)):
                err.print(f"[yellow]warning:[/] {f}: {escape(w)} ({example})")
        elif stream is not None:
            raise _fail(f"{stream}: no such example stream")
    if bad:
        raise typer.Exit(2)


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON Lines file (other lines skipped), batch envelopes opened."""
    with path.open("rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            items = rec.get("items") if isinstance(rec, dict) else None
            for r in items if isinstance(items, list) else [rec]:
                if isinstance(r, dict):
                    yield r


@app.command()
def explain(
    events: Annotated[Path, typer.Argument(help="events.jsonl written by replay or the service.")],
    receipts: Annotated[bool, typer.Option("--receipts", help="Also list every strategy receipt.")] = False,
) -> None:
    """Print out records for people: escalations with their reasons, pauses, and each mission's
    latest strategy receipt."""
    if not events.is_file():
        raise _fail(f"{events}: no such file")
    from .render import render_events

    recs: list[dict[str, Any]] = []
    with events.open(encoding="utf-8", errors="replace") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                recs.append(json.loads(text))
            except (json.JSONDecodeError, RecursionError) as exc:
                raise _fail(f"{events}: line {n} is not JSON ({getattr(exc, 'msg', 'nested too deeply')})",
                            1) from None
    render_events(recs, out, receipts=receipts)


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to listen on.")] = 9092,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the missionwatch topics it "
                                            "creates.")] = 4,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in memory) on 127.0.0.1 in the foreground.
    Ctrl-C or SIGTERM stops it (exit code 0)."""
    import time

    from .stream.broker import BrokerError, EmbeddedBroker, create_topics, interrupt_on_signals

    b = EmbeddedBroker(port=port)
    with interrupt_on_signals():  # SIGTERM unwinds as Ctrl-C does, through b.stop()
        try:
            try:
                b.start()
            except BrokerError as exc:
                raise _fail(str(exc)) from None
            create_topics(b.bootstrap, partitions)
            err.print(f"broker on {b.url} (in memory: its topics vanish when it stops); Ctrl-C stops it")
            while b.proc is not None and b.proc.poll() is None:
                time.sleep(0.5)
            raise _fail(f"the broker exited with code {b.proc.returncode if b.proc else '?'}", 1)
        except KeyboardInterrupt:
            err.print("stopping the broker")
        finally:
            b.stop()


@app.command()
def run(
    broker: Annotated[str | None, typer.Option(
        "--broker", help="Kafka bootstrap, e.g. kafka://127.0.0.1:9092 (several: separated by ';'). "
        "Default: start the embedded broker on --broker-port.")] = None,
    broker_port: Annotated[int | None, typer.Option(help="Port of the embedded broker. Default 9092.")] = None,
    specs: SpecsOpt = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="Keyring JSON of the keys allowed to sign "
                                              "input.")] = None,
    signing_key: Annotated[Path | None, typer.Option(
        "--signing-key", help="Monitor private key (PEM). Default: DATA/monitor.pem, made on first "
        "start and kept.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Directory for the service's own files. "
                                              "Default: ./missionwatch-data.")] = None,
    web_port: Annotated[int | None, typer.Option(help="Port of the risk console, its API, /healthz and "
                                                 "/metrics. Default 6066.")] = None,
    partitions: Annotated[int | None, typer.Option(min=1, help="Partitions of the topics this service "
                                                   "creates. Default 4.")] = None,
    allow_unsigned: Annotated[bool, typer.Option(
        "--allow-unsigned", help="Accept unsigned input records (a bad signature is still rejected).")] = False,
    app_id: Annotated[str | None, typer.Option(help="Kafka consumer group: workers with the same id split "
                                               "the partitions. Default missionwatch.")] = None,
    web_host: Annotated[str | None, typer.Option(help="Address the HTTP API binds. Default 127.0.0.1.")] = None,
    view_token: ViewTokenOpt = None, dashboards: DashboardsOpt = None, reviewers: ReviewersOpt = None,
    ledger: LedgerOpt = None, ledger_every: LedgerEveryOpt = None,
    checkpoint_every: CheckpointEveryOpt = None,
    batch: Annotated[int | None, typer.Option(min=1, help="Messages taken per step. Default 500.")] = None,
    linger: Annotated[float | None, typer.Option(help="Longest wait (s) to fill a step. Default 0.02.")] = None,
    fetch_wait: Annotated[float | None, typer.Option(help="Longest a fetch waits for new messages (s). "
                                                     "Default 0.05.")] = None,
    session_timeout: Annotated[float | None, typer.Option(help="Seconds without a heartbeat before a worker "
                                                          "counts as dead. Default 10.")] = None,
    rebalance_timeout: Annotated[float | None, typer.Option(help="Seconds the group waits for members to "
                                                            "rejoin. Default 3.")] = None,
    max_message_bytes: MaxMessageBytes = None, max_record_bytes: MaxRecordBytes = None, max_depth: MaxDepth = None,
    max_string_chars: MaxStringChars = None, max_number_chars: MaxNumberChars = None,
    max_abs_number: MaxAbsNumber = None, max_batch_items: MaxBatchItems = None, excerpt_chars: ExcerptChars = None,
    loglevel: Annotated[str, typer.Option(help="warning, info or debug.")] = "warning",
) -> None:
    """Run the streaming monitor: missionwatch.in -> the core -> missionwatch.out, .control and
    .rejected. Every option can also be set as MISSIONWATCH_<OPTION> in the environment."""
    # the options given (an option left out, or a flag not set, leaves the setting to the environment)
    given = {k: v for k, v in locals().items() if k != "loglevel" and v is not None
             and (v is not False or k == "ledger")}
    from pydantic import ValidationError

    from .console.review import DeskError
    from .stream.app import StreamSettings
    from .stream.broker import BrokerError
    from .stream.run import run_worker

    try:
        settings = StreamSettings(**given)
    except ValidationError as exc:
        raise _fail(f"settings: {exc}") from None
    _load_specs(settings.specs)  # a bad spec fails here, with its file and field
    try:
        run_worker(settings, loglevel=loglevel)
    except (BrokerError, KeyError_, DeskError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for the demo's files (emptied first).")]
        = Path("demo-out/stream"),
    port: Annotated[int | None, typer.Option(help="Port of the embedded broker. Default: a free one.")] = None,
    web_port: Annotated[int | None, typer.Option(help="Port of the monitor's /metrics and status API. "
                                                 "Default: a free one.")] = None,
    rate: Annotated[float, typer.Option(min=10, help="Receipts per second from the simulated agents.")] = 400.0,
    review_after: Annotated[float, typer.Option(min=0, help="Seconds from the pause to the reviewer's "
                                                "resume.")] = 3.0,
    hold: Annotated[bool, typer.Option("--hold", help="Keep the broker and monitor running after the "
                                       "campaign, until Ctrl-C.")] = False,
) -> None:
    """Everything at once with no set-up: the embedded broker, the monitor, and two simulated agent
    campaigns behind a gateway that obeys pause signals. It narrates receipts per second, strategy
    receipts, the escalation and its reason, the pause reaching the agent, and the resume; Ctrl-C
    stops everything it started."""
    import os
    import signal

    from .stream.demo import DemoOptions, run_demo

    # SIGTERM becomes a Ctrl-C: the same path (asyncio's own SIGINT handling included) stops
    # everything the demo started
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(os.getpid(), signal.SIGINT))
    try:
        code = run_demo(DemoOptions(stock_specs=default_specs_dir(), out=out, port=port, web_port=web_port,
                                    rate=rate, review_after=review_after, hold=hold),
                        say=lambda s: print(s, flush=True))
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code:
        raise typer.Exit(code)


def _variant(specs: Path | None, spec: Path) -> SpecRegistry:
    """The specs directory with `spec` in place of the spec of its name."""
    from .spec import load_spec

    registry = _load_specs(specs)
    try:
        variant = load_spec(spec)
    except SpecError as exc:
        raise _fail(str(exc)) from None
    return SpecRegistry({**registry.specs, variant.name: variant})


def _backtest_table(reports: list[Any]) -> Any:
    from rich.table import Table

    t = Table("rule", "spec", "first escalation", "delay after the change", "escalations",
              "min detectable gap at 25/50/75/100% of receipts", "verdicts at the end", title_justify="left",
              title=f"mission {reports[0].mission!r}, {reports[0].actions:,} actions")
    for rule in sorted({r for rep in reports for r in rep.rules}):
        for rep in reports:
            r = rep.rules.get(rule)
            if r is None:
                t.add_row(rule, rep.label, "no such rule", "", "", "", "")
                continue
            first = (f"after {r.first_actions:,} actions ({r.first_at})" + (f", {r.first_cohort}" if r.first_cohort else "")
                     if r.first_at else "never")
            gaps = " / ".join("-" if g is None else f"{g:.3g}" for g in r.min_detectable_gap)
            verdicts = ", ".join(f"{n} {v}" for v, n in r.verdicts.items())
            delay = "" if r.delay_actions is None else f"{r.delay_actions:,} actions"
            t.add_row(rule, rep.label, first, delay, str(r.escalations), gaps, verdicts)
    return t


@app.command()
def backtest(
    input: Annotated[Path, typer.Argument(help="JSON Lines file of past in records (as replay takes).")],
    spec: Annotated[list[Path], typer.Option("--spec", help="A spec file to run; give it twice or more to "
                                             "compare variants (each replaces the spec of its name).")],
    specs: SpecsOpt = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="Keyring JSON of the keys allowed to sign "
                                              "input.")] = None,
    allow_unsigned: Annotated[bool, typer.Option("--allow-unsigned", help="Accept unsigned input.")] = False,
    mission: Annotated[str | None, typer.Option("--mission", help="The mission to report on. Default: the one "
                                                "with the most actions.")] = None,
    planted: Annotated[Path | None, typer.Option("--planted", help="planted.json from missionwatch simulate: "
                                                 "report each rule's delay after its planted change.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as one JSON array.")] = False,
) -> None:
    """Run the same past receipts under each --spec and report side by side, per rule: when it would
    first have escalated (actions since the start, event time), how many escalations, the minimum
    detectable gap as the receipts went, and the verdicts at the end; with --planted, the delay
    after the planted change. Writes nothing."""
    from .backtest import backtest as run_backtest
    from .backtest import planted_changes
    from .monitor import Monitor

    if not input.is_file():
        raise _fail(f"{input}: no such file")
    truth = None
    if planted is not None:
        try:
            truth = planted_changes(planted)
        except (OSError, ValueError) as exc:
            raise _fail(str(exc)) from None
    try:
        ring = Keyring.load(keys) if keys else Keyring()
    except KeyError_ as exc:
        raise _fail(str(exc)) from None
    registries = [(chr(ord("A") + i) if len(spec) <= 26 else str(i + 1), f, _variant(specs, f))
                  for i, f in enumerate(spec)]
    size = input.stat().st_size
    reports = []
    with _progress() as bar:
        for label, path, registry in registries:
            task = bar.add_task(f"backtest {label}: {path}", total=size)
            monitor = Monitor(registry, signer=Signer.generate("backtest"), keyring=ring,
                              allow_unsigned=allow_unsigned)

            def tick(n: int, task: Any = task) -> None:
                bar.advance(task, n)

            with input.open("rb") as f:
                reports.append(run_backtest(label, monitor, f, mission=mission or (truth or {}).get("mission_id"),
                                            planted=truth, tick=tick))
    if as_json:
        print(json.dumps([{**r.to_json(), "spec_file": str(p)} for r, (_, p, _) in zip(reports, registries,
                                                                                     strict=True)], indent=2))
        return
    wide = _wide()
    for label, path, _ in registries:
        wide.print(f"{label} = {path}")
    wide.print(_backtest_table(reports))


LedgerFileOpt = Annotated[Path | None, typer.Option("--ledger", help="A replay's ledger.duckdb.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data", help="A running service's data directory (as given "
                                                 "to run): its out records as tables.")]


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="The SQL to run (DuckDB), e.g. \"select * from escalations\".")],
    ledger: LedgerFileOpt = None,
    data: DataDirOpt = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json (one object per line).")] = "table",
) -> None:
    """Run SQL over a ledger, read-only: a replay's ledger.duckdb (--ledger) or a running service's
    data directory (--data: strategy_receipts, escalations, controls and out_records, read as the
    service writes them). Exit 1 on a query DuckDB refuses, with its message."""
    import duckdb

    from .store.query import LedgerError, open_ledger

    if format not in ("table", "csv", "json"):
        raise _fail(f"--format must be table, csv or json, not {format!r}")
    try:
        con = open_ledger(ledger=ledger, data=data)
    except LedgerError as exc:
        raise _fail(str(exc)) from None
    try:
        rel = con.sql(query)
        if rel is None:
            return
        columns, rows = rel.columns, rel.fetchall()
    except duckdb.Error as exc:
        err.print(f"error: {type(exc).__name__}: {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        con.close()
    _print_rows(columns, rows, format)


def _print_rows(columns: list[str], rows: list[tuple[Any, ...]], format: str) -> None:
    import csv

    if format == "json":
        for r in rows:
            print(json.dumps(dict(zip(columns, r, strict=True)), default=str, ensure_ascii=False))
    elif format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    else:
        from rich.table import Table

        t = Table(*columns)
        for r in rows:
            t.add_row(*("" if v is None else escape(str(v)) for v in r))
        _wide().print(t)


@app.command()
def export(
    mission: Annotated[str, typer.Option("--mission", help="The mission whose rows to export.")],
    format: Annotated[str, typer.Option("--format", help="parquet or csv.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for one file per table.")] = Path("export"),
    ledger: LedgerFileOpt = None,
    data: DataDirOpt = None,
) -> None:
    """Write one mission's rows of every table of a ledger (--ledger or --data) to OUT/<table>.<format>."""
    from .store.query import LedgerError, open_ledger

    if format not in ("parquet", "csv"):
        raise _fail(f"--format must be parquet or csv, not {format!r}")
    try:
        con = open_ledger(ledger=ledger, data=data)
    except LedgerError as exc:
        raise _fail(str(exc)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        tables = [r[0] for r in con.sql("SELECT table_name FROM information_schema.tables WHERE NOT "
                                        "starts_with(table_name, '_') ORDER BY table_name").fetchall()]
        written = []
        for table in tables:
            columns = {r[0] for r in con.sql(f'DESCRIBE "{table}"').fetchall()}
            if "mission_id" not in columns:
                continue
            rel = con.sql(f'SELECT * FROM "{table}" WHERE mission_id = $m', params={"m": mission})
            path = out_dir / f"{table}.{format}"
            rel.to_parquet(str(path)) if format == "parquet" else rel.to_csv(str(path))
            written.append(f"{table} ({rel.shape[0]:,} rows)")
    finally:
        con.close()
    print(f"{mission}: {', '.join(written)} -> {out_dir}/")


@app.command()
def tail(
    broker: Annotated[str, typer.Option("--broker", help="Kafka bootstrap of the service.")] = "127.0.0.1:9092",
    mission: Annotated[str | None, typer.Option("--mission", help="Only this mission's records.")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep printing new records until Ctrl-C.")] = False,
) -> None:
    """Print the out records the service published (missionwatch.out and .control, merged) in each
    mission's chain order, once each, as JSON Lines that `missionwatch verify` accepts. Without
    --follow it prints what the topics hold and exits: 0, or 1 when a mission's chain has a gap
    (records the topics no longer hold), named on stderr."""
    from .stream.broker import BrokerError, bootstrap_of, interrupt_on_signals
    from .stream.tail import tail as read_tail

    out = sys.stdout.buffer

    def emit(rec: bytes) -> None:
        out.write(rec.rstrip(b"\n") + b"\n")
        if follow:
            out.flush()

    try:
        with interrupt_on_signals():
            merge = read_tail(bootstrap_of(broker), emit, mission=mission, follow=follow)
    except KeyboardInterrupt:
        out.flush()
        raise typer.Exit(130) from None
    except BrokerError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # aiokafka's connection errors
        raise _fail(f"cannot read from {broker}: {type(exc).__name__}: {exc}") from None
    out.flush()
    gaps = merge.gaps()
    for m, (missing, held) in gaps.items():
        err.print(f"mission {m!r}: seq {missing} is not on the topics (they hold seq {held} onwards); "
                  "its later records are left out")
    if gaps:
        raise typer.Exit(1)


def _reviewer(key: Path, keys: Path | None, reviewer: str | None) -> tuple[Signer, str]:
    """The reviewer's key, and the name its reviews carry: --reviewer, checked against the keyring's
    binding of the key when --keys is given, else that binding."""
    try:
        signer = load_private_key(key)
        ring = Keyring.load(keys) if keys is not None else None
    except KeyError_ as exc:
        raise _fail(str(exc)) from None
    if ring is not None:
        if ring.role_of(signer.key_id) != "reviewer":
            raise _fail(f"{key}: key {signer.key_id!r} is not a reviewer key of {keys}")
        bound = ring.scope_of(signer.key_id).reviewer
        if reviewer is not None and bound is not None and reviewer != bound:
            raise _fail(f"key {signer.key_id!r} belongs to {bound!r}; it cannot sign a review naming {reviewer!r}")
        reviewer = reviewer or bound
    if not reviewer:
        raise _fail("name yourself with --reviewer (or pass --keys, whose keyring binds the key to a reviewer)")
    return signer, reviewer


@app.command()
def review(
    mission: Annotated[str, typer.Argument(help="The mission_id to review.")],
    decision: Annotated[str, typer.Option("--decision", help="acknowledge, resume, pause or terminate.")],
    key: Annotated[Path, typer.Option("--key", help="Your reviewer private key (PEM); its file name is its "
                                      "key_id in the monitor's keyring.")],
    escalation: Annotated[str | None, typer.Option(
        "--escalation", help="The escalation it answers (a resume must name what paused the mission).")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why: kept in the review and the chain.")] = None,
    reviewer: Annotated[str | None, typer.Option(
        "--reviewer", help="Your name as the review carries it, e.g. user:lee.risk. Default: the name the "
        "keyring (--keys) binds to the key.")] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="The monitor's keyring: checks the key is a "
                                              "reviewer key and supplies its reviewer name.")] = None,
    broker: Annotated[str, typer.Option("--broker", help="Kafka bootstrap of the monitor.")] = "127.0.0.1:9092",
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for the monitor's answer.")] = 10.0,
    at: Annotated[str | None, typer.Option("--at", help="Date the review (RFC 3339). Default: now.")] = None,
) -> None:
    """Sign a review with your reviewer key, publish it to missionwatch.in and report the monitor's
    answer: accepted (exit 0), refused with its code and reason (exit 1), or no answer within
    --wait (exit 3; the review was published and may still be decided)."""
    from .console.review import make_review, review_time
    from .records import parse_time
    from .stream.broker import BrokerError, bootstrap_of
    from .stream.review import submit_review

    signer, reviewer = _reviewer(key, keys, reviewer)
    if at is not None:
        try:
            parse_time(at)
        except ValueError as exc:
            raise _fail(f"--at {exc}") from None
    try:
        rec = make_review(signer, mission_id=mission, decision=decision, reviewer=reviewer,
                          occurred_at=at or review_time(), escalation_id=escalation, note=note)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        fate = submit_review(bootstrap_of(broker), rec, wait)
    except (BrokerError, OSError) as exc:
        raise _fail(f"cannot reach the broker at {broker}: {exc}") from None
    except Exception as exc:  # aiokafka's connection errors
        raise _fail(f"cannot publish to {broker}: {type(exc).__name__}: {exc}") from None
    what = f"review {rec['review_id']} of {mission} ({decision}) by {reviewer}"
    if fate["outcome"] == "accepted":
        print(f"{what}: accepted; the mission is {fate.get('state')}")
        return
    if fate["outcome"] == "refused":
        err.print(f"{what}: refused ({fate.get('code')}): {fate.get('reason')}")
        raise typer.Exit(1)
    err.print(f"{what}: published; no answer from the monitor within {wait:g} s")
    raise typer.Exit(3)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
