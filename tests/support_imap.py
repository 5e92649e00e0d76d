"""A small IMAP server on loopback: the IMAP4rev1 subset that imaplib uses, one folder."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The one password LOGIN accepts, for every user.
PASSWORD = "bounce-password"


class Mailbox:
    """The stand-in's one folder: UID to message and flags."""

    def __init__(self) -> None:
        self.messages: dict[int, bytes] = {}
        self.flags: dict[int, set[str]] = {}
        self.logins: list[str] = []
        self.lock = threading.Lock()

    def add(self, uid: int, data: bytes) -> None:
        with self.lock:
            self.messages[uid] = data
            self.flags[uid] = set()


class ImapHandler(socketserver.StreamRequestHandler):
    """Speaks the IMAP4rev1 subset that imaplib uses for login, select, search, fetch, store."""

    server: ImapServer

    def handle(self) -> None:
        self.send(b"* OK stand-in IMAP4rev1 ready")
        for _ in range(1000):
            line = self.rfile.readline()
            if not line:
                return
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            command, _, args = rest.partition(" ")
            if not self.dispatch(tag, command.upper(), args):
                return

    def send(self, data: bytes) -> None:
        self.wfile.write(data + b"\r\n")

    def dispatch(self, tag: str, command: str, args: str) -> bool:
        mailbox = self.server.mailbox
        if command == "CAPABILITY":
            self.send(b"* CAPABILITY IMAP4rev1")
        elif command == "LOGIN":
            user, _, password = args.partition(" ")
            mailbox.logins.append(user)
            if password.strip('"') != PASSWORD:
                self.send(f"{tag} NO [AUTHENTICATIONFAILED] invalid credentials".encode())
                return True
        elif command == "SELECT":
            self.send(f"* {len(mailbox.messages)} EXISTS".encode())
            self.send(b"* OK [UIDVALIDITY 77] UIDs valid")
        elif command == "UID":
            self.uid_command(tag, args)
            return True
        elif command == "LOGOUT":
            self.send(b"* BYE logging out")
            self.send(f"{tag} OK LOGOUT completed".encode())
            return False
        else:
            self.send(f"{tag} BAD unknown command".encode())
            return True
        self.send(f"{tag} OK {command} completed".encode())
        return True

    def uid_command(self, tag: str, args: str) -> None:
        mailbox = self.server.mailbox
        verb, _, rest = args.partition(" ")
        with mailbox.lock:
            if verb.upper() == "SEARCH":
                unseen = [uid for uid in sorted(mailbox.messages) if not mailbox.flags[uid]]
                self.send(b"* SEARCH " + " ".join(map(str, unseen)).encode())
            elif verb.upper() == "FETCH":
                uid = int(rest.split()[0])
                data = mailbox.messages[uid]
                self.wfile.write(f"* 1 FETCH (UID {uid} BODY[] {{{len(data)}}}\r\n".encode())
                self.wfile.write(data + b")\r\n")
            elif verb.upper() == "STORE":
                uid_text, _, flags = rest.partition(" +FLAGS ")
                uid = int(uid_text)
                mailbox.flags[uid].update(flags.strip("()").split())
                self.send(f"* 1 FETCH (UID {uid} FLAGS ({flags.strip('()')}))".encode())
        self.send(f"{tag} OK UID completed".encode())


class ImapServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__(("127.0.0.1", 0), ImapHandler)
        self.mailbox = mailbox


@contextmanager
def serve_imap() -> Iterator[tuple[int, Mailbox]]:
    """Serve an empty mailbox on a loopback port in a thread; yield the port and the mailbox."""
    mailbox = Mailbox()
    server = ImapServer(mailbox)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1], mailbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
