"""``plaudit demo``: the daemon against the sandbox, checked against its truth.

The demo serves the sandbox in this process, writes a configuration that
points at it and starts ``plaudit run`` as a child process.  It prints
progress once a second.  It stops when the sandbox's script is over and the
journal agrees with the sandbox's ground truth, or when time runs out.  The final check
reads the journal file directly, so it sees exactly what was made durable.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio

from plaudit.daemon.control_client import request
from plaudit.demo_dirs import demo_dirs, without_removed_files
from plaudit.errors import ControlError, PlauditError
from plaudit.reviews.model import Review
from plaudit.reviews.store import load_reviews
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox.demo_channels import DemoChannels, free_port
from plaudit.sandbox.demo_faults import (
    FaultScript,
    platform_faults_summary,
    reliability_config,
    retries_by_cause,
)
from plaudit.sandbox.demo_mail import DemoMail
from plaudit.sandbox.demo_reviews import DemoMatches, couple_reviews
from plaudit.sandbox.notices import NoticeScript
from plaudit.sandbox.receiver import DemoWebhooks, serve_receiver
from plaudit.sandbox.standin import stand_in_truth_reviews, stand_ins_truth_reviews
from plaudit.sandbox.truth import truth_reviews
from plaudit.sandbox.world import hour_epoch

# Fields compared between the journal and the sandbox's truth.  Deletion is
# compared as set or not: the journal records when it noticed a deletion,
# the sandbox when it happened.
COMPARED = (
    "profile",
    "stars",
    "recommendation",
    "text",
    "author",
    "created_at",
    "updated_at",
    "reply_text",
)


# Seconds between full Google listings in the demo.  Only a full listing
# finds a reply to an older review.  So the interval must be short beside the
# half of the run that follows the script, in which the daemon catches up.
# With 2 s syncs, every other sync is full.
DEMO_FULL_SYNC_INTERVAL = 5.0


class DemoError(PlauditError):
    """The demo could not start or stop its daemon."""


def demo_config(
    base_url: str, *, sync_interval: float, full_sync_interval: float | None = None
) -> str:
    """Return a configuration that syncs every platform of the sandbox.

    Without ``full_sync_interval`` the Google table keeps the default.
    """
    full_sync = "" if full_sync_interval is None else f"full_sync_interval = {full_sync_interval}\n"
    return f"""\
[daemon]
shutdown_timeout = 10.0
log_level = "info"

[journal]
lease_seconds = 15.0
lease_sweep_interval = 2.0
retry_initial = 0.5
retry_max = 5.0

[supervisor]
backoff_initial = 0.2
backoff_max = 2.0

[metrics]
port = 0

[platforms.google]
api_base = "{base_url}/google/v4"
token_url = "{base_url}/google/oauth2/token"
client_id = "plaudit-sandbox"
client_secret = "sandbox-secret"
refresh_token = "sandbox-refresh-token"
sync_interval = {sync_interval}
{full_sync}request_timeout = 5.0

[[platforms.google.locations]]
account = "accounts/1001"
location = "locations/2001"
name = "Willow & Vine Photography"

[[platforms.google.locations]]
account = "accounts/1001"
location = "locations/2002"
name = "Willow & Vine Photography (Studio)"

[platforms.facebook]
api_base = "{base_url}/facebook/v19.0"
sync_interval = {sync_interval}
request_timeout = 5.0

[[platforms.facebook.pages]]
page_id = "301001"
access_token = "sandbox-facebook-page-token"

[[platforms.facebook.pages]]
page_id = "301002"
access_token = "sandbox-facebook-page-token"

[platforms.trustpilot]
api_base = "{base_url}/trustpilot/v1"
token_url = "{base_url}/trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken"
api_key = "sandbox-trustpilot-key"
api_secret = "sandbox-trustpilot-secret"
sync_interval = {sync_interval}
request_timeout = 5.0

[[platforms.trustpilot.business_units]]
business_unit_id = "5e1f00000000000000000001"

[[platforms.trustpilot.business_units]]
business_unit_id = "5e1f00000000000000000002"

[platforms.yelp]
api_base = "{base_url}/yelp/v3"
api_key = "sandbox-yelp-key"
sync_interval = {sync_interval}
request_timeout = 5.0

[[platforms.yelp.businesses]]
business_id = "blush-and-bloom-florist"

[[platforms.yelp.businesses]]
business_id = "harbour-view-venue"
"""


# The demo's marketplace profile: the sandbox's storefront page with JSON-LD,
# on WeddingWire because it has no review window: on Hitched the sandbox's
# older reviews would count as aged out rather than deleted.
MARKETPLACE_SITE = "weddingwire"
MARKETPLACE_PROFILE = "willow-barn"


def marketplace_demo_config(
    base_url: str, *, poll_interval: float, notices: NoticeScript | None = None
) -> str:
    """Return the ``[platforms.marketplace]`` table: one sandbox storefront, one mailbox.

    With ``notices``, a profile in mailbox mode reads the Maildir it writes.
    """
    return _storefront_profile(base_url, poll_interval=poll_interval) + (
        "" if notices is None else _mailbox_profile(notices)
    )


def _mailbox_profile(notices: NoticeScript) -> str:
    return f"""
[[platforms.marketplace.profiles]]
site = "{notices.site.name}"
profile_id = "{notices.profile}"
vendor_name = "{notices.vendor}"
modes = ["mailbox"]
maildir = "{notices.maildir.resolve()}"
"""


def _storefront_profile(base_url: str, *, poll_interval: float) -> str:
    return f"""
[platforms.marketplace]
allow_short_poll_interval = true
contact = "demo@example.com"
mailbox_interval = 1.0

[[platforms.marketplace.profiles]]
site = "{MARKETPLACE_SITE}"
profile_id = "{MARKETPLACE_PROFILE}"
vendor_name = "Willow Barn"
storefront_url = "{base_url}/marketplace/{MARKETPLACE_SITE}/{MARKETPLACE_PROFILE}.htm"
allow_any_host = true
modes = ["storefront"]
poll_interval = {poll_interval}
"""


def marketplace_truth_reviews(truth: dict[str, Any]) -> list[Review]:
    """Return the truth of the demo's storefront profile as its page shows it.

    The page gives each review's day but not its time, no edit time, and no
    reply in its JSON-LD, so those fields are reduced to what the page shows.
    """
    reviews = []
    for review in stand_in_truth_reviews(truth, "marketplace"):
        if review.profile != MARKETPLACE_PROFILE:
            continue
        day = review.created_at[:10] + "T00:00:00.000Z"
        reviews.append(
            msgspec.structs.replace(
                review,
                platform=MARKETPLACE_SITE,
                created_at=day,
                updated_at=day,
                reply_text=None,
                reply_updated_at=None,
            )
        )
    return reviews


async def stop_daemon(process: trio.Process) -> int:
    """Send the daemon SIGTERM, wait for its drain, SIGKILL it after 30 s; return its status.

    Shielded, so a Ctrl-C that cancels the caller still stops the daemon.
    """
    with trio.CancelScope(shield=True):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(30.0):
            await process.wait()
        if process.returncode is None:
            process.kill()
        exit_code = await process.wait()
    return exit_code


async def fetch_truth(base_url: str) -> list[Review]:
    """Return the sandbox's truth: every review of every platform and the demo's storefront."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(f"{base_url}/_sandbox/truth")
        response.raise_for_status()
    document = response.json()
    return (
        truth_reviews(document)
        + stand_ins_truth_reviews(document)
        + marketplace_truth_reviews(document)
    )


class Discrepancy(msgspec.Struct, frozen=True):
    """One way the journal differs from the truth."""

    platform: str
    review_id: str
    problem: str


def compare(journal_reviews: list[Review], truth: list[Review]) -> list[Discrepancy]:
    """Return every difference between the journal's reviews and the truth's."""
    ours = {(review.platform, review.review_id): review for review in journal_reviews}
    theirs = {(review.platform, review.review_id): review for review in truth}
    # A review created and deleted between two syncs was never visible to
    # the daemon, so its absence from the journal is correct.
    problems = [
        Discrepancy(platform, review_id, "missing from the journal")
        for platform, review_id in theirs.keys() - ours.keys()
        if theirs[platform, review_id].deleted_at is None
    ]
    problems += [
        Discrepancy(platform, review_id, "in the journal but not on the platform")
        for platform, review_id in ours.keys() - theirs.keys()
    ]
    for key in ours.keys() & theirs.keys():
        # A review edited and then deleted between two syncs keeps the
        # content that the last sync saw, because no client can read the
        # edit.  So a review deleted on the platform is compared by its
        # deletion alone.
        deleted_there = theirs[key].deleted_at is not None
        for field in () if deleted_there else COMPARED:
            mine, true = getattr(ours[key], field), getattr(theirs[key], field)
            if mine != true:
                problems.append(
                    Discrepancy(
                        key[0], key[1], f"{field}: journal has {mine!r}, platform has {true!r}"
                    )
                )
        deleted_here = ours[key].deleted_at is not None
        if deleted_here != deleted_there:
            problems.append(
                Discrepancy(
                    key[0],
                    key[1],
                    f"deleted: journal says {deleted_here}, platform says {deleted_there}",
                )
            )
    return sorted(problems, key=lambda item: (item.platform, item.review_id, item.problem))


def read_journal(path: Path) -> tuple[list[Review], list[tuple[str, str, int]]]:
    """Read reviews and review event counts (platform, type, count) from the journal, read-only."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        reviews = load_reviews(connection, include_deleted=True)
        # Only review events: request.* events name a message provider, not a review platform.
        events = connection.execute(
            "SELECT platform, type, count(*) FROM events WHERE type LIKE 'review.%'"
            " GROUP BY platform, type"
        ).fetchall()
    finally:
        connection.close()
    return reviews, events


class Demo:
    """One demo run: its directories, sandbox, daemon process and results."""

    def __init__(
        self,
        *,
        seconds: float,
        state_dir: Path,
        runtime_dir: Path,
        as_json: bool,
        files_kept: bool = True,
    ) -> None:
        self.seconds = seconds
        self.state_dir = state_dir
        # False when state_dir is removed at the end, so its paths are not printed.
        self.files_kept = files_kept
        self.runtime_dir = runtime_dir
        self.as_json = as_json
        self.config_path = state_dir / "plaudit.toml"
        self.journal_path = state_dir / "journal.sqlite3"
        self.socket_path = runtime_dir / "control.sock"
        self.base_url = ""
        self.script_ends_at = 0.0
        self.webhooks = DemoWebhooks()
        self.mail = DemoMail()
        self.channels = DemoChannels()
        self.matches = DemoMatches()
        # Set in run(), where the script's length is known.
        self.notices: NoticeScript | None = None
        # Set in run(), where the sandbox's address is known.
        self.faults: FaultScript | None = None
        # Set when the daemon first responds on its control socket.
        self.daemon_ready = trio.Event()
        self.metrics_address: str | None = None

    def say(self, line: str) -> None:
        # With --json the summary must be the last line; progress goes to stderr.
        print(line, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    async def run(self) -> dict[str, Any]:
        # The script of arrivals, edits, replies and deletions fills the first
        # half of the run; the rest lets the daemon catch up.
        script_seconds = max(4.0, self.seconds * 0.5)
        # Every platform's world starts at the current UTC hour, so the
        # report's trends show recent months.
        options = SandboxOptions(
            seed=7,
            script_seconds=script_seconds,
            epoch=hour_epoch(time.time()),
            scripted_reviews=couple_reviews(script_seconds),
        )
        async with trio.open_nursery() as nursery:
            self.base_url = await nursery.start(serve_sandbox, options)
            self.script_ends_at = time.monotonic() + script_seconds
            self.say(f"sandbox: {self.base_url} (script of events for {script_seconds:.0f} s)")
            self.faults = FaultScript(self.base_url)
            nursery.start_soon(self.faults.run, self.daemon_ready)
            receiver_url = await nursery.start(serve_receiver, self.webhooks.receiver)
            self.say(f"webhook receiver: {receiver_url}")
            smtp_port = await nursery.start(self.mail.sink.serve)
            self.say(f"SMTP sink: 127.0.0.1:{smtp_port}")
            twilio_url = await nursery.start(self.channels.twilio.serve)
            push_url = await nursery.start(self.channels.push.serve)
            self.say(f"SMS provider: {twilio_url}, push service: {push_url}")
            self.notices = NoticeScript(
                self.state_dir / "marketplace-mail",
                seed=7,
                script_seconds=script_seconds,
                epoch=options.epoch,
            )
            await nursery.start(self.notices.run)
            self.say(f"review notices: {self.notices.maildir}")
            self.config_path.write_text(
                demo_config(
                    self.base_url, sync_interval=2.0, full_sync_interval=DEMO_FULL_SYNC_INTERVAL
                )
                + reliability_config()
                + marketplace_demo_config(self.base_url, poll_interval=2.0, notices=self.notices)
                + self.webhooks.config(receiver_url)
                + self.mail.config(smtp_port, self.base_url)
                + self.channels.config(
                    twilio_url=twilio_url, inbound_port=free_port(), state_dir=self.state_dir
                ),
                encoding="utf-8",
            )
            summary = await self._run_daemon()
            nursery.cancel_scope.cancel()
        return summary

    async def _run_daemon(self) -> dict[str, Any]:
        command = [
            sys.executable, "-m", "plaudit", "run",
            "--config", str(self.config_path),
            "--state-dir", str(self.state_dir),
            "--runtime-dir", str(self.runtime_dir),
        ]  # fmt: skip
        log_path = self.state_dir / "daemon.log"
        with log_path.open("ab") as log_file:
            # A session of its own keeps the terminal's Ctrl-C from reaching the
            # daemon, so only the demo stops it, with SIGTERM.
            process = await trio.lowlevel.open_process(
                command, stdout=log_file, stderr=log_file, start_new_session=True
            )
            where = f", log {log_path}" if self.files_kept else ""
            self.say(f"daemon: pid {process.pid}{where}")
            try:
                agreed_early = await self._watch(process)
                errors_seen = await self._errors_seen()
            finally:
                exit_code = await stop_daemon(process)
        return await self._summarise(
            exit_code=exit_code, agreed_early=agreed_early, log_path=log_path, errors=errors_seen
        )

    async def _errors_seen(self) -> dict[str, dict[str, int]]:
        """Return the daemon's repeated call attempts by platform and cause, from its metrics."""
        if not self.metrics_address:
            return {}
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(f"http://{self.metrics_address}/metrics")
                response.raise_for_status()
        except httpx.HTTPError as error:
            self.say(f"metrics not read from {self.metrics_address}: {error}")
            return {}
        return retries_by_cause(response.text)

    async def _watch(self, process: trio.Process) -> bool:
        """Print progress until the script is over and the journal agrees, or time runs out."""
        deadline = time.monotonic() + self.seconds
        began = time.monotonic()
        while time.monotonic() < deadline:
            await trio.sleep(1.0)
            if process.poll() is not None:
                raise DemoError(
                    f"the daemon exited early with status {process.returncode}; see its log"
                )
            line, agrees = await self._progress(began)
            self.say(line)
            # The agreement counts once the faults are over too.
            faults_over = self.faults is None or self.faults.finished.is_set()
            if agrees and faults_over and time.monotonic() > self.script_ends_at:
                return True
        return False

    async def _progress(self, began: float) -> tuple[str, bool]:
        elapsed = time.monotonic() - began
        try:
            status = await request(self.socket_path, "status", timeout=5.0)
        except (ControlError, OSError):
            return f"{elapsed:5.1f}s  daemon starting", False
        self.metrics_address = status["daemon"].get("metrics_address")
        self.daemon_ready.set()
        await self.channels.import_couples(self.mail, self.socket_path, self.state_dir)
        totals = status["journal"]["totals"]
        jobs = " ".join(f"{state}={count}" for state, count in totals.items() if count)
        if not self.journal_path.exists():
            return f"{elapsed:5.1f}s  jobs: {jobs}", False
        reviews, _events = await trio.to_thread.run_sync(read_journal, self.journal_path)
        truth = await self._truth()
        live = sum(1 for review in reviews if review.deleted_at is None)
        differences = len(compare(reviews, truth))
        line = (
            f"{elapsed:5.1f}s  reviews synced: {live:4d}  "
            f"differences from truth: {differences:4d}  jobs: {jobs}"
        )
        missing = self.webhooks.missing(self.journal_path)
        line += f"  webhooks not yet delivered: {missing}"
        unsent = self.mail.pending(self.journal_path) + self.channels.pending(self.journal_path)
        line += f"  review requests not yet sent: {unsent}"
        # A couple's review converts once it is matched and its
        # request.converted events have reached the receiver.
        unconverted = await self._unmatched(script_over=time.monotonic() > self.script_ends_at)
        unconverted += self.matches.undelivered(
            self.journal_path,
            endpoint=self.webhooks.endpoint,
            accepted=self.webhooks.receiver.accepted_ids(),
        )
        line += f"  conversions not yet shown: {unconverted}"
        return line, differences == 0 and missing == 0 and unsent == 0 and unconverted == 0

    async def _unmatched(self, *, script_over: bool) -> int:
        """Return how many couples' reviews are unmatched, asking for a rescan once they exist."""
        unmatched = self.matches.pending(self.journal_path)
        if unmatched and script_over:
            await self.matches.rescan(self.socket_path)
            unmatched = self.matches.pending(self.journal_path)
        return unmatched

    async def _truth(self) -> list[Review]:
        notices = self.notices.truth_reviews() if self.notices is not None else []
        return await fetch_truth(self.base_url) + notices

    async def _summarise(
        self,
        *,
        exit_code: int,
        agreed_early: bool,
        log_path: Path,
        errors: dict[str, dict[str, int]],
    ) -> dict[str, Any]:
        reviews, events = await trio.to_thread.run_sync(read_journal, self.journal_path)
        truth = await self._truth()
        discrepancies = compare(reviews, truth)
        live = [review for review in reviews if review.deleted_at is None]
        platforms: dict[str, dict[str, Any]] = {}
        for review in reviews:
            counts = platforms.setdefault(review.platform, {"reviews": 0, "deleted": 0})
            counts["deleted" if review.deleted_at else "reviews"] += 1
        for platform, event_type, count in events:
            platforms.setdefault(platform, {"reviews": 0, "deleted": 0})[f"{event_type}_events"] = (
                count
            )
        if self.faults is not None:
            injected = await self.faults.injected()
            for platform, faults in platform_faults_summary(self.faults, injected, errors).items():
                platforms.setdefault(platform, {"reviews": 0, "deleted": 0}).update(faults)
        return {
            "reviews_synced": len(live),
            "platforms": platforms,
            "truth_reviews": sum(1 for review in truth if review.deleted_at is None),
            "agrees_with_truth": not discrepancies and exit_code == 0,
            "discrepancies": [msgspec.to_builtins(item) for item in discrepancies[:50]],
            "discrepancy_count": len(discrepancies),
            "converged_before_deadline": agreed_early,
            "daemon_exit_code": exit_code,
            "journal": str(self.journal_path),
            "daemon_log": str(log_path),
            **self.webhooks.summary(self.journal_path),
            **self.mail.summary(self.journal_path),
            **self.channels.summary(),
            **self.matches.summary(
                self.journal_path,
                endpoint=self.webhooks.endpoint,
                accepted=self.webhooks.receiver.accepted_ids(),
            ),
        }


def print_summary(summary: dict[str, Any]) -> None:
    print()
    print(
        f"reviews synced:    {summary['reviews_synced']} "
        f"(sandbox truth: {summary['truth_reviews']})"
    )
    for platform, counts in summary["platforms"].items():
        print(f"  {platform}: {_platform_line(counts)}")
        if "faults_injected" in counts:
            injected = ", ".join(f"{k} {v}" for k, v in counts["faults_injected"].items())
            seen = ", ".join(f"{k} {v}" for k, v in counts["errors_seen"].items())
            print(f"    faults injected: {injected or 'none'}")
            print(f"    errors retried:  {seen or 'none'}")
            if counts["faults_injected"].get("page_loop"):
                # A repeated page token is no error: the listing ends early as partial.
                print("    (a page loop ends that listing early, without deletions)")
    print(f"daemon exit code:  {summary['daemon_exit_code']}")
    verdict = (
        "yes" if summary["agrees_with_truth"] else f"NO, {summary['discrepancy_count']} differences"
    )
    print(f"journal agrees with the sandbox's truth: {verdict}")
    for item in summary["discrepancies"][:10]:
        print(f"  {item['platform']} {item['review_id']}: {item['problem']}")
    print(
        f"webhooks:          {summary['webhooks_delivered']} delivered, "
        f"{summary['webhooks_failed']} failed attempts (the demo's receiver answers 500 "
        f"once on purpose), {summary['webhooks_missing']} review.created events not delivered"
    )
    sent = summary["requests_sent"]
    print(
        f"review requests:   e-mail {sent['email']}, SMS {sent['sms']}, push {sent['push']} "
        f"sent; {summary['requests_suppressed']} suppressed"
    )
    print(
        f"couples' reviews:  {summary['reviews_matched']} matched, "
        f"{summary['requests_converted']} requests converted, "
        f"{summary['conversion_webhooks_delivered']} request.converted webhooks delivered"
    )
    if "journal" in summary:
        print(f"journal: {summary['journal']}")


def _platform_line(counts: dict[str, Any]) -> str:
    """Describe one platform's reviews and events: "61 reviews, 2 deleted; events: ..."."""
    events = ", ".join(
        f"{value} {name.removeprefix('review.').removesuffix('_events')}"
        for name, value in sorted(counts.items())
        if name.endswith("_events") and isinstance(value, int)
    )
    live, deleted = counts["reviews"], counts["deleted"]
    return f"{live} reviews, {deleted} deleted; events: {events or 'none'}"


def demo_main(*, seconds: float, state_dir: str | None, as_json: bool, keep: bool = False) -> int:
    """Run the demo; exit status 0 only when the journal agrees with the truth.

    Every review.created event must also have reached the demo's webhook
    receiver with a valid signature.
    """
    if seconds < 5:
        raise DemoError(f"--seconds {seconds:g} is too short; the demo needs at least 5 seconds")
    with demo_dirs(state_dir, prefix="plaudit-demo-", keep=keep) as dirs:
        demo = Demo(
            seconds=seconds,
            state_dir=dirs.state,
            runtime_dir=dirs.runtime,
            as_json=as_json,
            files_kept=dirs.kept,
        )
        summary = without_removed_files(trio.run(demo.run), dirs)
    if as_json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    delivered = summary["webhooks_missing"] == 0
    return 0 if summary["agrees_with_truth"] and delivered else 1
