"""Real alert receivers on loopback: a JSON webhook (aiohttp) and an SMTP server (aiosmtpd).

Both run in the test's event loop and record what they receive; tests wait on a condition
("three posts arrived") with a timeout instead of sleeping. The webhook answers from a script
of status codes, so a test can make it fail twice and then accept.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import deque
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

LOOPBACK = "127.0.0.1"
#: How long a test waits for something to arrive before it fails.
WAIT_SECONDS = 20.0


class _Recorder:
    """Wakes waiters whenever something arrives, so tests wait on conditions, not time."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(
        self, condition: Callable[[], bool], timeout: float = WAIT_SECONDS
    ) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(condition)


class WebhookReceiver(_Recorder):
    """An HTTP endpoint that records JSON posts to ``/hook/{token}``.

    ``script`` holds the status codes of the next answers (then 200 for ever); ``attempts``
    counts every request, ``posts`` the bodies accepted with 2xx.
    """

    def __init__(self, token: str = "s3cr3t-hook-token") -> None:
        super().__init__()
        self.token = token
        self.script: deque[int] = deque()
        self.attempts = 0
        self.posts: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The apprise URL that posts JSON here."""
        return f"json://{LOOPBACK}:{self.port}/hook/{self.token}"

    def answer(self, statuses: Iterable[int]) -> None:
        self.script.extend(statuses)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{token}", self._handle)
        # No access log: it would print the token, which the tests look for in the logs.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for_posts(self, count: int) -> list[dict[str, Any]]:
        await self.wait_until(lambda: len(self.posts) >= count)
        return self.posts

    async def wait_for_attempts(self, count: int) -> None:
        await self.wait_until(lambda: self.attempts >= count)

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        status = self.script.popleft() if self.script else 200
        if request.match_info["token"] != self.token:
            status = 404
        if 200 <= status < 300:
            self.posts.append(await request.json())
        await self._notify()
        return web.json_response({"status": status}, status=status)


class SmtpReceiver(_Recorder):
    """An SMTP server (plain, AUTH PLAIN/LOGIN without TLS) that keeps the mail it accepts.

    Mail is accepted only from a session that logged in with the expected credentials, as a
    real relay would require.
    """

    def __init__(self, user: str = "alerts", password: str = "smtp-pa55word") -> None:
        super().__init__()
        self.user = user
        self.password = password
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    def url(self, to: str = "sre@example.test", sender: str = "rechecker@example.test") -> str:
        """The apprise URL that mails here, over plain SMTP with a login."""
        return (
            f"mailto://{quote(self.user)}:{quote(self.password)}@{LOOPBACK}:{self.port}"
            f"?from={sender}&to={to}&mode=insecure"
        )

    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(
                self,
                hostname="smtp.example.test",
                auth_require_tls=False,
                authenticator=self._authenticate,
            ),
            LOOPBACK,
            0,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def wait_for_messages(self, count: int) -> list[EmailMessage]:
        await self.wait_until(lambda: len(self.messages) >= count)
        return self.messages

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == self.password
        )
        if ok:
            self.logins.append(self.user)
        return AuthResult(success=ok)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """aiosmtpd's hook for a complete message."""
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        content = envelope.content
        raw = content.encode() if isinstance(content, str) else content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        await self._notify()
        return "250 OK"


class StuckReceiver(_Recorder):
    """A TCP endpoint that accepts connections and never answers until released.

    It stands for a receiver that hangs: a delivery to it stays in flight for as long as the
    test wants, without a clock deciding when. ``release()`` closes every connection and
    stops listening, so later attempts are refused.
    """

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """An apprise URL posting here, with a read timeout longer than any test."""
        return f"json://{LOOPBACK}:{self.port}/hook/stuck-token?rto=600"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def wait_for_connections(self, count: int) -> None:
        await self.wait_until(lambda: self.connections >= count)

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        await self._notify()
