"""Loopback fakes of Microsoft's identity endpoints, for Teams in production mode.

A Teams bot with credentials talks to two identity services (shared/reference/teams.md §2.3,
§2.5), and the Agents SDK reaches both at fixed ``https://`` addresses that no setting moves:

* **inbound** — the Bot Connector signs each activity with an RS256 JWT (``iss``
  ``https://api.botframework.com``, ``aud`` = our app id, a ``serviceurl`` claim); the SDK's
  ``JwtTokenValidator`` fetches the signing keys from
  ``https://login.botframework.com/v1/.well-known/keys`` (hard-coded per issuer);
* **outbound** — MSAL gets the bot's own token with client credentials: it reads
  ``https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration`` and
  POSTs ``grant_type=client_credentials`` with ``scope=https://api.botframework.com/.default``
  to the token endpoint named there; MSAL only accepts ``https`` authorities.

So the fake does not ask the code under test to point elsewhere: it *is* those two hosts, on
loopback. :class:`FakeEntra` runs an HTTPS server with a certificate for both host names,
issued by a throwaway CA, and an HTTP ``CONNECT`` proxy that tunnels exactly those hosts to it
(anything else is refused and recorded in ``refused_hosts``). :meth:`FakeEntra.environment`
is what a test puts into ``os.environ``: ``HTTPS_PROXY`` (read by ``requests`` — MSAL — and
by ``urllib`` — PyJWT's key client), and the CA as ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``.
The production code runs unchanged, with its real configuration, over real TLS.

It also holds what tests need to act as Microsoft: :meth:`channel_token` signs an activity's
token as the Bot Connector would (or signs it wrongly, for the refusals), and
:meth:`check_bot_token` is what the fake Bot Connector asks about every outbound
``Authorization: Bearer`` (signature by this Entra's key, audience Bot Framework, the app id,
the tenant, not expired).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import itertools
import os
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ENTRA_HOST = "login.microsoftonline.com"
BOTFRAMEWORK_HOST = "login.botframework.com"
HOSTS = (ENTRA_HOST, BOTFRAMEWORK_HOST)
CHANNEL_ISSUER = "https://api.botframework.com"  # the Bot Connector's tokens (teams.md §2.3)
BOTFRAMEWORK_SCOPE = "https://api.botframework.com/.default"
BOTFRAMEWORK_AUDIENCE = "https://api.botframework.com"
_kids = itertools.count(1)


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class SigningKey:
    """An RS256 key with its ``kid``, as a JWKS lists it."""

    kid: str
    key: rsa.RSAPrivateKey = field(default_factory=_rsa)

    def jwk(self, **extra: Any) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "alg": "RS256",
                "n": _b64(numbers.n), "e": _b64(numbers.e), **extra}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, _pem(self.key), algorithm="RS256",
                          headers={"kid": kid or self.kid, "typ": "JWT"})


_BOTFRAMEWORK_KEY: list[SigningKey] = []


def botframework_key() -> SigningKey:
    """The (fake) Bot Framework's signing key, made once per process."""
    if not _BOTFRAMEWORK_KEY:
        _BOTFRAMEWORK_KEY.append(SigningKey(f"botframework-{next(_kids)}"))
    return _BOTFRAMEWORK_KEY[0]


@dataclass
class App:
    """An app registration: what the client-credentials grant checks."""

    client_id: str
    secret: str
    tenant: str


@dataclass
class TokenRequest:
    tenant: str
    client_id: str
    scope: str
    granted: bool
    error: str = ""


def _certificates(hosts: tuple[str, ...]) -> tuple[bytes, bytes, bytes]:
    """(CA certificate PEM, server certificate chain PEM, server key PEM) for ``hosts``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, leaf_key = _rsa(), _rsa()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "insightbot test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    return ca_pem, leaf.public_bytes(serialization.Encoding.PEM) + ca_pem, _pem(leaf_key)


class FakeEntra:
    """Entra ID's token service and the Bot Framework's key set, on loopback over TLS."""

    def __init__(self, *, token_lifetime: int = 3600, channel_key: SigningKey | None = None) -> None:
        self.token_lifetime = token_lifetime
        self.entra_key = SigningKey(f"entra-{next(_kids)}")  # signs the bot's own tokens
        # signs inbound activities; one key for the whole test process by default, as the
        # Bot Framework's keys are: the SDK keeps one key client per JWKS address for the
        # process, and PyJWT re-reads a key set for an unknown kid only once per cooldown
        self.channel_key = channel_key or botframework_key()
        self.apps: dict[str, App] = {}
        self.token_requests: list[TokenRequest] = []
        self.issued: list[str] = []  # access tokens handed out, in order
        self.key_fetches: list[str] = []  # JWKS paths read (who validated with our keys)
        self.refused_hosts: list[str] = []  # CONNECTs to any other host
        self._dir: tempfile.TemporaryDirectory[str] | None = None  # start(): CA and certificates
        self.ca_file = ""
        self._runner: web.AppRunner | None = None
        self._proxy: asyncio.Server | None = None
        self._tunnels: set[asyncio.Task[None]] = set()
        self.tls_port = 0
        self.proxy_port = 0
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # start()
        self._thread: threading.Thread | None = None

    def register(self, client_id: str, secret: str, tenant: str) -> App:
        app = App(client_id, secret, tenant.lower())
        self.apps[client_id] = app
        return app

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> FakeEntra:
        """Serve from a thread of its own, with its own event loop, as Microsoft's servers are
        not on ours: MSAL's first token call blocks the caller's loop (the SDK builds its MSAL
        client, which fetches the tenant's OpenID metadata, synchronously), and a fake on that
        loop could never answer it."""
        self._dir = tempfile.TemporaryDirectory(prefix="fake-entra-")
        self.ca_file = os.path.join(self._dir.name, "ca.pem")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-entra",
                                        daemon=True)
        self._thread.start()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._serve(), self._loop))
        return self

    async def close(self) -> None:
        if self._thread is None:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._stop(), self._loop))
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 5)
        self._loop.close()
        self._thread = None
        if self._dir is not None:
            self._dir.cleanup()

    async def _serve(self) -> None:
        ca_pem, chain_pem, key_pem = _certificates(HOSTS)
        with open(self.ca_file, "wb") as f:
            f.write(ca_pem)
        assert self._dir is not None
        chain_file = os.path.join(self._dir.name, "server.pem")
        key_file = os.path.join(self._dir.name, "server.key")
        with open(chain_file, "wb") as f:
            f.write(chain_pem)
        with open(key_file, "wb") as f:
            f.write(key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain_file, key_file)
        app = web.Application()
        app.router.add_get("/v1/.well-known/openidconfiguration", self._channel_metadata)
        app.router.add_get("/v1/.well-known/keys", self._channel_keys)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._metadata)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._entra_keys)
        app.router.add_get("/common/discovery/instance", self._instance_metadata)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        self.tls_port = self._runner.addresses[0][1]
        self._proxy = await asyncio.start_server(self._tunnel, "127.0.0.1", 0)
        self.proxy_port = self._proxy.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
            for task in list(self._tunnels):
                task.cancel()
            await asyncio.gather(*self._tunnels, return_exceptions=True)
            await self._proxy.wait_closed()
            self._proxy = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeEntra:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def environment(self) -> dict[str, str]:
        """What the process's environment needs for its HTTPS clients to reach these fakes."""
        proxy = f"http://127.0.0.1:{self.proxy_port}"
        local = "127.0.0.1,localhost"
        return {"HTTPS_PROXY": proxy, "https_proxy": proxy, "NO_PROXY": local,
                "no_proxy": local, "REQUESTS_CA_BUNDLE": self.ca_file,
                "SSL_CERT_FILE": self.ca_file}

    # -- acting as Microsoft ----------------------------------------------------------------
    def channel_token(self, app_id: str, service_url: str, *, audience: str | None = None,
                      issuer: str = CHANNEL_ISSUER, lifetime: int = 3600, age: int = 0,
                      key: SigningKey | None = None, kid: str | None = None,
                      **claims: Any) -> str:
        """The Bearer token the Bot Connector puts on an activity it sends to ``app_id``.
        ``key``/``kid`` sign it with another key (a forgery); ``age`` moves it into the past."""
        now = int(time.time()) - age
        body = {"iss": issuer, "aud": audience if audience is not None else app_id,
                "serviceurl": service_url, "nbf": now - 5, "iat": now - 5,
                "exp": now + lifetime, "jti": uuid.uuid4().hex, **claims}
        signer = key or self.channel_key
        return signer.sign(body, kid=kid or (self.channel_key.kid if key is not None else None))

    def check_bot_token(self, token: str, app_id: str) -> str:
        """Why ``token`` is not a valid Bot Framework token of ``app_id`` ("" when it is):
        the Bot Connector's check of an outbound call."""
        try:
            claims = jwt.decode(token, self.entra_key.key.public_key(), algorithms=["RS256"],
                                audience=BOTFRAMEWORK_AUDIENCE, leeway=0)
        except jwt.PyJWTError as exc:
            return f"{type(exc).__name__}: {exc}"
        app = self.apps.get(app_id)
        if claims.get("appid") != app_id or app is None:
            return f"token of app {claims.get('appid')!r}, not {app_id!r}"
        if claims.get("tid") != app.tenant:
            return f"token of tenant {claims.get('tid')!r}, not {app.tenant!r}"
        if token not in self.issued:
            return "token was not issued by this Entra"
        return ""

    # -- HTTPS handlers -----------------------------------------------------------------------
    def _host(self, request: web.Request, expected: str) -> None:
        if request.host.split(":")[0] != expected:
            raise web.HTTPNotFound(text=f"{request.path} is served by {expected}")

    async def _channel_metadata(self, request: web.Request) -> web.Response:
        self._host(request, BOTFRAMEWORK_HOST)
        return web.json_response({
            "issuer": CHANNEL_ISSUER,
            "authorization_endpoint": "https://invalid.botframework.com",
            "jwks_uri": f"https://{BOTFRAMEWORK_HOST}/v1/.well-known/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"]})

    async def _channel_keys(self, request: web.Request) -> web.Response:
        self._host(request, BOTFRAMEWORK_HOST)
        self.key_fetches.append(request.path)
        return web.json_response({"keys": [self.channel_key.jwk(endorsements=["msteams"])]})

    async def _metadata(self, request: web.Request) -> web.Response:
        self._host(request, ENTRA_HOST)
        tenant = request.match_info["tenant"]
        base = f"https://{ENTRA_HOST}/{tenant}"
        return web.json_response({
            "issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "jwks_uri": f"https://{ENTRA_HOST}/{tenant}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "id_token_signing_alg_values_supported": ["RS256"], "tenant_region_scope": "EU"})

    async def _instance_metadata(self, request: web.Request) -> web.Response:
        """Instance discovery: MSAL asks for the host's aliases before it reads its cache."""
        self._host(request, ENTRA_HOST)
        endpoint = request.query.get("authorization_endpoint", "")
        tenant = endpoint.split("/")[3] if endpoint.count("/") >= 4 else "common"
        return web.json_response({
            "tenant_discovery_endpoint":
                f"https://{ENTRA_HOST}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": ENTRA_HOST, "preferred_cache": "login.windows.net",
                          "aliases": [ENTRA_HOST, "login.windows.net", "login.microsoft.com",
                                      "sts.windows.net"]}]})

    async def _entra_keys(self, request: web.Request) -> web.Response:
        self._host(request, ENTRA_HOST)
        self.key_fetches.append(request.path)
        return web.json_response({"keys": [self.entra_key.jwk()]})

    async def _token(self, request: web.Request) -> web.Response:
        """The client-credentials grant, answered as Entra answers (AADSTS codes)."""
        self._host(request, ENTRA_HOST)
        tenant = request.match_info["tenant"].lower()
        form = await request.post()
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        scope = str(form.get("scope", ""))
        app = self.apps.get(client_id)
        error = ""
        if form.get("grant_type") != "client_credentials":
            error, status, code = "unsupported_grant_type", 400, "AADSTS70003"
        elif app is None or app.tenant != tenant:
            error, status, code = "unauthorized_client", 400, "AADSTS700016"
        elif not secret or secret != app.secret:
            error, status, code = "invalid_client", 401, "AADSTS7000215"
        elif BOTFRAMEWORK_SCOPE not in scope.split():
            error, status, code = "invalid_scope", 400, "AADSTS70011"
        self.token_requests.append(TokenRequest(tenant, client_id, scope, not error, error))
        if error:
            return web.json_response({"error": error, "error_description": f"{code}: {error}",
                                      "error_codes": [int(code[6:])]}, status=status)
        now = int(time.time())
        token = self.entra_key.sign({
            "aud": BOTFRAMEWORK_AUDIENCE, "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now, "nbf": now, "exp": now + self.token_lifetime, "appid": client_id,
            "azp": client_id, "tid": tenant, "idtyp": "app", "ver": "1.0",
            "jti": uuid.uuid4().hex})
        self.issued.append(token)
        return web.json_response({"token_type": "Bearer", "expires_in": self.token_lifetime,
                                  "ext_expires_in": self.token_lifetime, "access_token": token})

    # -- the CONNECT proxy ------------------------------------------------------------------
    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tunnels.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host not in HOSTS or port != "443":
                self.refused_hosts.append(target)
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.tls_port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:  # close(): end quietly (the server's callback reads it)
            pass
        finally:
            writer.close()
            self._tunnels.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        if writer.can_write_eof():
            try:
                writer.write_eof()
            except OSError:
                pass
