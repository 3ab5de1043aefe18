"""Backend profiles at run time: each one's backend, limits and metrics name, and the routes.

:class:`Profiles` is what the relay asks questions through: it holds one built backend per
profile of the routing (``bot/routing.py``), picks the profile for a new conversation from the
place a question comes from, and describes the set-up for people (``/insight-routes``, Teams'
``routes``) — profile names, backend kinds and routes; never a URL, key or id of a backend.

Without a routing file there is one implicit profile, ``default``, made of ``BACKEND`` and the
backend variables, and every conversation goes to it (as before profiles existed).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Iterable

from adapters.base import Backend
from bot.config import ConfigError, Settings
from bot.routing import IMPLICIT, LABELS, Place, Route, RoutingConfig, load_routes

log = logging.getLogger(__name__)


@dataclass
class Profile:
    name: str
    backend: Backend
    description: str = ""
    run_timeout: float | None = None  # None: the relay's
    max_concurrent: int | None = None  # None or 0: no limit
    slots: asyncio.Semaphore | None = field(default=None, init=False, repr=False)
    waiting: int = field(default=0, init=False)  # runs waiting for a slot now

    def __post_init__(self) -> None:
        if self.max_concurrent:
            self.slots = asyncio.Semaphore(self.max_concurrent)

    @property
    def kind(self) -> str:
        return self.backend.name

    @property
    def label(self) -> str:
        return LABELS.get(self.kind, self.kind)


class Profiles:
    """The backend profiles of one service, by name, with the routes that choose among them."""

    def __init__(self, profiles: Iterable[Profile], *, routes: Iterable[Route] = (),
                 default: str | None = None, implicit: bool = False,
                 source: str | None = None) -> None:
        self._by_name = {p.name: p for p in profiles}
        if not self._by_name:
            raise ValueError("at least one profile is needed")
        self.routes = tuple(routes)
        self.default = default
        self.implicit = implicit  # one backend, no routing file: conversations store no profile
        self.source = source

    @classmethod
    def single(cls, backend: Backend, *, run_timeout: float | None = None,
               max_concurrent: int | None = None) -> "Profiles":
        """One backend for every conversation (no routing file)."""
        profile = Profile(IMPLICIT, backend, run_timeout=run_timeout, max_concurrent=max_concurrent)
        return cls([profile], default=IMPLICIT, implicit=True)

    @classmethod
    def from_config(cls, config: RoutingConfig, *, backend: Backend | None = None) -> "Profiles":
        """Build every profile's backend. ``backend`` replaces the implicit profile's (tests)."""
        from bot.backends import build_backend

        built: list[Profile] = []
        try:
            for spec in config.profiles.values():
                if config.implicit and backend is not None:
                    own = backend
                else:
                    try:
                        own = build_backend(spec.settings, spec.kind)
                    except ConfigError as exc:
                        if config.implicit:
                            raise
                        key = next((k for k in spec.key_lines if k in str(exc)), None)
                        where = config.where(spec.name, key) if key else config.where(spec.name)
                        raise ConfigError(f"{where}profile {spec.name!r}: {exc}") from None
                max_concurrent = spec.max_concurrent
                if max_concurrent is None and config.implicit:
                    max_concurrent = spec.settings.MAX_CONCURRENT_RUNS
                built.append(Profile(spec.name, own, description=spec.description,
                                     run_timeout=spec.run_timeout, max_concurrent=max_concurrent))
        except BaseException:
            for profile in built:
                _close_soon(profile.backend)
            raise
        return cls(built, routes=config.routes, default=config.default,
                   implicit=config.implicit, source=config.source)

    # -- looking up --------------------------------------------------------------------------
    def get(self, name: str | None) -> Profile | None:
        return self._by_name.get(name) if name is not None else None

    def all(self) -> list[Profile]:
        return list(self._by_name.values())

    def names(self) -> list[str]:
        return list(self._by_name)

    @property
    def primary(self) -> Profile:
        """The default profile, else the first one (what ``insightbot ask`` uses by default)."""
        return self._by_name.get(self.default or "") or next(iter(self._by_name.values()))

    def route(self, place: Place) -> tuple[Profile | None, Route | None]:
        """The profile a new conversation at ``place`` goes to, and the route that chose it
        (None: the default, or no profile at all — refused)."""
        if self.implicit:
            return self.primary, None
        for route in self.routes:
            if route.matches(place):
                return self._by_name[route.profile], route
        return self.get(self.default), None

    # -- telling people ----------------------------------------------------------------------
    def listing(self) -> list[str]:
        """One line per profile: name, backend kind and description (no settings)."""
        return [f"• `{p.name}` — {p.label}" + (f": {p.description}" if p.description else "")
                for p in self._by_name.values()]

    def describe(self, place: Place | None = None, *, here: str | None = None) -> str:
        """The whole set-up as Markdown both platforms render: profiles, routes, default, and
        (with ``here``) what the caller's conversation uses."""
        if self.implicit:
            text = (f"One backend answers every conversation: {self.primary.label} "
                    "(set by BACKEND; no routing file).")
            return text
        lines = ["Backend profiles:", *self.listing(), "",
                 "Routes (the first that matches a new conversation wins):"]
        lines += [f"{i}. {r.describe()} → `{r.profile}`" for i, r in enumerate(self.routes, 1)] \
            or ["(none)"]
        lines.append(f"Anything else → `{self.default}` (the default)." if self.default
                     else "Anything else is refused: no default profile.")
        if place is not None:
            profile, route = self.route(place)
            if here is not None:
                lines += ["", f"This conversation: `{here}`."]
            elif profile is None:
                lines += ["", "Here: no profile — questions here are refused."]
            else:
                rule = f"by route {self.routes.index(route) + 1}" if route else "by default"
                lines += ["", f"Here: `{profile.name}` ({rule})."]
        lines.append("A thread keeps the profile it started with when the routes change.")
        return "\n".join(lines)

    def refusal(self, *, gone: str | None = None) -> str:
        """What someone asking where no profile applies is told (privately where possible)."""
        if gone is not None:
            head = (f"Sorry — this thread was answered by the profile `{gone}`, which is no "
                    "longer configured. Please start a new thread.")
        else:
            head = "Sorry — no analytics agent is set up for this conversation."
        return "\n".join([head + " Nothing was sent to an analytics agent.",
                          "Profiles an admin can route here:", *self.listing(),
                          "Routes are set in the routing file (ROUTES_FILE); an admin can see "
                          "them with `/insight-routes` in Slack or `routes` in Teams."])

    async def aclose(self) -> None:
        for profile in self._by_name.values():
            try:
                await profile.backend.aclose()
            except Exception:
                log.warning("profile %s: closing its backend failed", profile.name, exc_info=True)


def build_profiles(settings: Settings, *, routing: RoutingConfig | None = None,
                   backend: Backend | None = None) -> Profiles:
    """The service's profiles: ``routing`` (else ROUTES_FILE, else BACKEND), with ``backend``
    standing in for the implicit profile's (tests give an object of their own)."""
    if routing is None:
        if backend is not None and not settings.ROUTES_FILE:
            return Profiles.single(backend, max_concurrent=settings.MAX_CONCURRENT_RUNS or None)
        routing = load_routes(settings)
    if not routing.implicit and settings.BACKEND:
        log.warning("ROUTES_FILE is set: BACKEND and the backend variables of the environment "
                    "are not used (each profile has its own settings)")
    return Profiles.from_config(routing, backend=backend)


def _close_soon(backend: Backend) -> None:
    """Close a backend built before a later profile failed (outside a loop: nothing to do)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.create_task(backend.aclose())
