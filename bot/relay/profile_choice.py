"""Which backend profile a question, or a resumed run, goes to.

A thread keeps the profile its conversation started with — whatever the routes say by then —
so a follow-up continues the same backend conversation and a run resumed after a restart
continues where it was. Only a new thread is routed (by :class:`bot.profiles.Profiles`, from
where it was asked); a place no route covers, or a thread whose profile left the routing file,
is refused with a message for the asker and nothing stored. Without a routing file there is one
implicit profile and none of this touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.profiles import Profile, Profiles
from bot.relay.thread import Question, ThreadRef
from bot.routing import Place
from storage.repository import Repository, RunRecord


@dataclass(frozen=True)
class Routing:
    """Where a question goes: a profile, or (``profile`` None) a refusal to tell the asker."""

    profile: Profile | None
    refusal: str | None = None


class NoProfile(LookupError):
    """A question no profile can answer reached the relay (its platform did not route it)."""


class ProfileChoice:
    def __init__(self, repo: Repository, profiles: Profiles) -> None:
        self.repo = repo
        self.profiles = profiles

    async def route(self, ref: ThreadRef, place: Place) -> Routing:
        """The profile a question in ``ref`` goes to: the one its thread started with, else the
        one the routes give ``place``; or a refusal (nothing is stored)."""
        if self.profiles.implicit:
            return Routing(self.profiles.primary)
        kept = await self.kept(ref)
        if kept is not None:
            profile = self.profiles.get(kept)
            if profile is None:  # the routing file no longer has it
                return Routing(None, self.profiles.refusal(gone=kept))
            return Routing(profile)
        profile, _ = self.profiles.route(place)
        if profile is None:
            return Routing(None, self.profiles.refusal())
        return Routing(profile)

    async def kept(self, ref: ThreadRef) -> str | None:
        """The profile the thread ``ref`` keeps, if it has started (and there are profiles)."""
        if self.profiles.implicit:
            return None
        conv = await self.repo.get_conversation(ref.platform, ref.workspace, ref.channel, ref.thread)
        return conv.profile if conv is not None else None

    async def for_question(self, question: Question) -> Profile:
        """What the platform routed the question to; a question it did not route gets its
        thread's own profile, else the default. Raises :class:`NoProfile` when none applies."""
        if self.profiles.implicit:
            return self.profiles.primary
        profile = self.profiles.get(question.profile)
        if profile is not None:
            return profile
        ref = question.ref
        conv = await self.repo.get_conversation(ref.platform, ref.workspace, ref.channel, ref.thread)
        profile = self.profiles.get(conv.profile if conv else None) or self.profiles.get(
            self.profiles.default if conv is None or conv.profile is None else None)
        if profile is None:
            raise NoProfile(f"no backend profile for {ref.key}")
        return profile

    async def for_record(self, record: RunRecord) -> Profile | None:
        """The profile a resumed run continues on: its conversation's (never a fresh route);
        a conversation from before profiles: the default, when of the run's backend kind."""
        if self.profiles.implicit:
            return self.profiles.primary
        conv = await self.repo.get_conversation(record.platform, record.workspace, record.channel,
                                                record.thread)
        if conv is not None and conv.profile is not None:
            return self.profiles.get(conv.profile)
        default = self.profiles.get(self.profiles.default)
        return default if default is not None and default.kind == record.backend else None
