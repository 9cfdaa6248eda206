"""
The C{bbreceiver} command (SPEC §2): C{url} prints each receiver's URL as
Kargo would publish it, and C{send} posts a payload signed the way Bitbucket
does, for trying out and troubleshooting a receiver.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from typing import Any, NoReturn

from bbreceiver.bitbucket import sign
from bbreceiver.config import ConfigError, load_config
from bbreceiver.receivers import discovered_routes, receiver_url


class CommandError(Exception):
    """
    The command cannot go on; C{str()} is the one line to show.
    """


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bbreceiver",
        description="Tools for the bbreceiver daemon (which itself runs as "
        "'twist bbreceiver --config FILE').",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    url = commands.add_parser(
        "url", help="print PROJECT NAME URL for every receiver",
        description="Print one line per receiver: PROJECT NAME URL, as "
        "Kargo publishes it in ProjectConfig.status.webhookReceivers.")
    url.add_argument("--config", required=True, metavar="PATH",
                     help="the daemon's configuration file")
    send = commands.add_parser(
        "send", help="sign and POST a payload as Bitbucket would",
        description="Sign FILE's exact bytes and POST them with the headers "
        "Bitbucket sends; print the status line and the body; exit 0 on "
        "2xx, 1 otherwise.")
    send.add_argument("--url", required=True, help="the receiver's URL")
    secret = send.add_mutually_exclusive_group()
    secret.add_argument("--secret", help="the shared secret")
    secret.add_argument("--secret-file", metavar="F",
                        help="a file holding the shared secret (used "
                        "byte-for-byte)")
    send.add_argument("--event", required=True, metavar="KEY",
                      help="the X-Event-Key, e.g. repo:push")
    send.add_argument("--payload", required=True, metavar="FILE",
                      help="the JSON body to send")
    send.add_argument("--flavor", choices=["cloud", "server"],
                      default="cloud",
                      help="send Bitbucket Cloud's headers (default) or "
                      "Data Center's")
    send.add_argument("--algorithm", choices=["sha256", "sha512"],
                      default="sha256")
    send.add_argument("--unsigned", action="store_true",
                      help="send no X-Hub-Signature")
    tls = send.add_mutually_exclusive_group()
    tls.add_argument("--cacert", metavar="F",
                     help="trust this CA certificate (PEM) for https")
    tls.add_argument("--insecure", action="store_true",
                     help="do not verify the server's certificate")
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    The console script.
    """
    args = _parser().parse_args(argv)
    from twisted.internet.task import react

    async def run(reactor: Any) -> int:
        if args.command == "url":
            return await _url(reactor, args)
        return await _send(reactor, args)

    def guarded(reactor: Any) -> Any:
        from twisted.internet.defer import Deferred

        d = Deferred.fromCoroutine(run(reactor))

        def failed(failure: Any) -> int:
            if failure.check(CommandError, ConfigError):
                sys.stderr.write("bbreceiver: {}\n".format(failure.value))
                return 1
            return failure  # type: ignore[no-any-return]

        def exit_code(code: int) -> None:
            # react() exits 0 on success; SystemExit carries other codes.
            if code:
                raise SystemExit(code)

        return d.addErrback(failed).addCallback(exit_code)

    react(guarded)
    raise AssertionError("react returned")  # pragma: no cover


async def _url(reactor: Any, args: argparse.Namespace) -> int:
    config = load_config(args.config)
    routes = await discovered_routes(reactor, config)
    for source, receiver, secret in routes.receivers():
        if secret is None:
            sys.stderr.write("bbreceiver: {} ({}) has no URL: {}\n".format(
                receiver.label, source, routes.why_unrouted(receiver)))
            continue
        sys.stdout.write("{} {} {}\n".format(
            receiver.project or '""', receiver.name,
            receiver_url(config.base_url, receiver.project, receiver.name,
                         secret)))
    return 0


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CommandError("cannot read {} {}: {}".format(
            what, path, e.strerror or e)) from None


def delivery_headers(
    event: str, flavor: str, signature: bytes | None
) -> dict[bytes | str, list[bytes | str]]:
    """
    The headers Bitbucket Cloud or Data Center sends with a delivery
    (reference/bitbucket-deliveries.md §1.1, §2.1).
    """
    headers: dict[bytes | str, list[bytes | str]] = {
        b"X-Event-Key": [event.encode("utf-8")]}
    if flavor == "cloud":
        headers.update({
            b"X-Hook-UUID": [str(uuid.uuid4()).encode("ascii")],
            b"X-Request-UUID": [str(uuid.uuid4()).encode("ascii")],
            b"X-Attempt-Number": [b"1"],
            b"User-Agent": [b"Bitbucket-Webhooks/2.0"],
            b"Content-Type": [b"application/json"],
        })
    else:
        headers.update({
            b"X-Request-Id": [str(uuid.uuid4()).encode("ascii")],
            b"Content-Type": [b"application/json; charset=utf-8"],
        })
    if signature is not None:
        headers[b"X-Hub-Signature"] = [signature]
    return headers


async def _send(reactor: Any, args: argparse.Namespace) -> int:
    import treq
    from treq.client import HTTPClient
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

    body = _read(args.payload, "payload")
    signature = None
    if not args.unsigned:
        if args.secret is not None:
            secret = args.secret.encode("utf-8")
        elif args.secret_file is not None:
            secret = _read(args.secret_file, "secret file")
        else:
            raise CommandError("give --secret or --secret-file (or "
                               "--unsigned)")
        signature = sign(body, secret, args.algorithm)
    policy: Any = BrowserLikePolicyForHTTPS()
    if args.cacert or args.insecure:
        from bbreceiver.kube.auth import KubeConfigError, KubeTLSPolicy, \
            load_certificates

        try:
            authorities = load_certificates(
                _read(args.cacert, "CA certificate"), args.cacert
            ) if args.cacert else []
        except KubeConfigError as e:
            raise CommandError(str(e)) from None
        policy = KubeTLSPolicy(ca_certificates=authorities,
                               insecure=args.insecure)
    http = HTTPClient(Agent(reactor, contextFactory=policy))
    try:
        response = await http.post(
            args.url, data=body,
            headers=delivery_headers(args.event, args.flavor, signature),
            timeout=30)
        answer = await treq.content(response)
    except Exception as e:
        raise CommandError("POST {} failed: {}".format(
            args.url, _describe(e))) from None
    sys.stdout.write("HTTP/1.1 {} {}\n".format(
        response.code, response.phrase.decode("latin-1")))
    sys.stdout.write(answer.decode("utf-8", "replace") + "\n")
    return 0 if 200 <= response.code < 300 else 1


def _describe(error: BaseException) -> str:
    reasons = getattr(error, "reasons", None)
    if reasons:
        return "; ".join(_describe(r.value) for r in reasons)
    return str(error) or type(error).__name__


if __name__ == "__main__":  # pragma: no cover
    main()
