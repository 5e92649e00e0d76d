"""The ``plaudit`` command: run, check-config, ctl, demo, sandbox, inspect, check-sender."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from plaudit import __version__
from plaudit.errors import ConfigError, PlauditError

DEFAULT_CONFIG = "/etc/plaudit/plaudit.toml"


def _run(args: argparse.Namespace) -> int:
    import trio

    from plaudit.config import load_config, resolve_paths
    from plaudit.daemon.app import Daemon
    from plaudit.daemon.logs import configure_logging

    if args.config == DEFAULT_CONFIG and not os.path.exists(DEFAULT_CONFIG):
        problem = (
            f"{DEFAULT_CONFIG}: file not found; pass --config PATH, "
            "such as a copy of config/plaudit.example.toml"
        )
        raise ConfigError(DEFAULT_CONFIG, [problem])
    config = load_config(args.config)
    paths = resolve_paths(config, state_dir=args.state_dir, runtime_dir=args.runtime_dir)
    configure_logging(config.daemon.log_level, config.daemon.log_format)
    daemon = Daemon(
        args.config,
        config,
        paths,
        state_dir_override=args.state_dir,
        runtime_dir_override=args.runtime_dir,
    )
    trio.run(daemon.run)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from plaudit.config import check_config

    return check_config(args.path, out=sys.stdout, err=sys.stderr)


def _ctl(args: argparse.Namespace) -> int:
    from plaudit.daemon.ctl import ctl_main

    return ctl_main(args.rest)


def _demo(args: argparse.Namespace) -> int:
    from plaudit.demo import demo_main

    if args.chaos:
        from plaudit.chaos import chaos_main

        return chaos_main(
            seconds=args.seconds,
            seed=args.seed,
            state_dir=args.state_dir,
            as_json=args.json,
            keep=args.keep,
        )

    return demo_main(
        seconds=args.seconds, state_dir=args.state_dir, as_json=args.json, keep=args.keep
    )


def _sandbox(args: argparse.Namespace) -> int:
    from plaudit.sandbox import sandbox_main

    return sandbox_main(args.rest)


def _inspect(args: argparse.Namespace) -> int:
    from plaudit.messaging.deliverability.inspect import inspect_main

    if args.report_type == "webhook":
        from plaudit.inbound.inspect import inspect_webhook

        return inspect_webhook(args.provider, args.path)

    if args.report_type == "platform-json":
        from plaudit.connectors.platform_json import inspect_platform_json

        return inspect_platform_json(args.platform, args.path)

    if args.report_type in ("storefront", "notification"):
        from plaudit.connectors.marketplace.inspect import inspect_main as inspect_marketplace

        return inspect_marketplace(args.report_type, args.path, platform=args.platform)

    return inspect_main(args.report_type, args.path)


def _report(args: argparse.Namespace) -> int:
    from plaudit.reporting.command import report_main

    return report_main(
        state_dir=args.state_dir,
        config_path=args.config,
        as_json=args.json,
        csv_dir=args.csv,
        html_file=args.html,
    )


def _check_sender(args: argparse.Namespace) -> int:
    from plaudit.messaging.deliverability.sender import check_sender_main

    resolver = args.resolver
    if resolver is None and args.config is not None:
        from plaudit.config import load_config

        resolver = load_config(args.config).deliverability.resolver or None
    return check_sender_main(
        args.domain,
        resolver=resolver,
        system_resolver=args.system_resolver,
        selectors=args.selector,
        as_json=args.json,
        out=sys.stdout,
    )


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        leaves.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return leaves


def _is_interrupt(group: BaseExceptionGroup[BaseException]) -> bool:
    """Return True when Ctrl-C ended the command: a KeyboardInterrupt beside operator errors only.

    A group that also contains any other exception keeps its traceback, because it is a bug.
    """
    leaves = _leaves(group)
    interrupted = any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves)
    expected = all(isinstance(leaf, KeyboardInterrupt | PlauditError) for leaf in leaves)
    return interrupted and expected


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plaudit", description="Review-collection daemon for wedding vendors."
    )
    parser.add_argument("--version", action="version", version=f"plaudit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the daemon in the foreground",
        description="Run the daemon in the foreground. SIGTERM or SIGINT drains it and exits 0, "
        "and SIGHUP reloads the configuration.",
    )
    run.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})"
    )
    run.add_argument(
        "--state-dir", help="directory for the journal and lock; overrides [daemon] state_dir"
    )
    run.add_argument(
        "--runtime-dir", help="directory for the control socket; overrides [daemon] runtime_dir"
    )
    run.set_defaults(func=_run)

    check = commands.add_parser(
        "check-config",
        help="validate a configuration file and list every problem",
        description="Validate a configuration file. Exit 0 when it is valid, and otherwise "
        "print every problem and exit 1.",
    )
    check.add_argument("path", help="the TOML file to check")
    check.set_defaults(func=_check_config)

    ctl = commands.add_parser(
        "ctl", help="steer a running daemon over its control socket", add_help=False
    )
    ctl.add_argument("rest", nargs=argparse.REMAINDER)
    ctl.set_defaults(func=_ctl)

    demo = commands.add_parser(
        "demo", help="run the daemon against the bundled sandbox and check the result"
    )
    demo.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="maximum seconds the demo runs; it stops as soon as the journal agrees with "
        "the sandbox (default 30).  --chaos injects faults for all of them, at least 30",
    )
    demo.add_argument(
        "--state-dir",
        help="keep the demo's journal in this directory (default: a temporary one, "
        "removed at the end unless --keep)",
    )
    demo.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary state directory (journal, daemon log) and print its path; "
        "a --state-dir is always kept",
    )
    demo.add_argument(
        "--chaos",
        action="store_true",
        help="inject platform faults and SIGKILL the daemon; exit 1 when a target is missed",
    )
    demo.add_argument(
        "--seed", type=int, default=1, help="seed of the --chaos fault and kill schedule"
    )
    demo.set_defaults(func=_demo)

    sandbox = commands.add_parser(
        "sandbox", help="serve stand-ins for the review platforms on loopback", add_help=False
    )
    sandbox.add_argument("rest", nargs=argparse.REMAINDER)
    sandbox.set_defaults(func=_sandbox)

    inspect = commands.add_parser(
        "inspect",
        help="parse a saved file offline and print JSON: a bounce, complaint or DMARC report, "
        "a marketplace storefront page or notification e-mail, a platform API response "
        "(platform-json) or a provider webhook body",
    )
    inspect.add_argument(
        "report_type",
        choices=[
            "bounce",
            "arf",
            "dmarc",
            "storefront",
            "notification",
            "platform-json",
            "webhook",
        ],
        help="which parser reads the file",
    )
    inspect.add_argument(
        "path",
        help="the file: a raw email, DMARC XML, gzip, zip or JSON, or a saved marketplace page",
    )
    inspect.add_argument(
        "--platform",
        help="marketplace of a storefront page (for example hitched), or for platform-json "
        "one of google, facebook, trustpilot, yelp",
    )
    inspect.add_argument(
        "--provider",
        choices=[
            "sendgrid",
            "mailgun",
            "postmark",
            "ses",
            "twilio",
            "resend",
            "facebook",
            "google",
            "brevo",
        ],
        help="for webhook: the provider that sent the saved request body",
    )
    inspect.set_defaults(func=_inspect)

    sender = commands.add_parser(
        "check-sender",
        help="check a sending domain's SPF, DKIM and DMARC records (exit 0 ready, 3 not ready)",
    )
    sender.add_argument("domain", help="the sending domain, such as example.com")
    sender.add_argument(
        "--resolver", metavar="IP[:PORT]", help="DNS resolver to query (default port 53)"
    )
    sender.add_argument(
        "--system-resolver",
        action="store_true",
        help="query the resolvers of /etc/resolv.conf instead of --resolver",
    )
    sender.add_argument(
        "--config", help="read the resolver from [deliverability] resolver of this file"
    )
    sender.add_argument(
        "--selector",
        action="append",
        default=[],
        metavar="S",
        help="DKIM selector to check; repeat for each selector",
    )
    sender.add_argument("--json", action="store_true", help="print one JSON object")
    sender.set_defaults(func=_check_sender)

    report = commands.add_parser(
        "report", help="review figures per platform, request funnel and which link to lead with"
    )
    report.add_argument(
        "--state-dir",
        help="directory of the journal (default: the config's, else /var/lib/plaudit)",
    )
    report.add_argument(
        "--config", help="configuration file naming the vendor and review links (optional)"
    )
    report.add_argument("--json", action="store_true", help="print the report as one JSON object")
    report.add_argument("--csv", metavar="DIR", help="also write one CSV file per table into DIR")
    report.add_argument(
        "--html", metavar="FILE", help="also write a self-contained HTML page with charts"
    )
    report.set_defaults(func=_report)
    return parser


# These commands parse their own options; argparse's REMAINDER would swallow
# options that come before the first positional argument.
PASSTHROUGH = {"ctl": _ctl, "sandbox": _sandbox}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in PASSTHROUGH:
        func = PASSTHROUGH[arguments[0]]
        args = argparse.Namespace(rest=arguments[1:], func=func)
    else:
        args = build_parser().parse_args(arguments)
    try:
        status: int = args.func(args)
    except PlauditError as error:
        print(f"plaudit: {error}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:
        # Errors raised inside Trio nurseries arrive wrapped in groups.
        if _is_interrupt(group):
            print("plaudit: interrupted", file=sys.stderr)
            return 130
        operator_errors, rest = group.split(PlauditError)
        if operator_errors is None or rest is not None:
            raise
        for leaf in _leaves(operator_errors):
            print(f"plaudit: {leaf}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
