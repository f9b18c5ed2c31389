"""Identities: the logged-in users that open-model iterations borrow (a partly-open model).

An identity is an instance of the scenario's compiled user class (`workload.engine.user`): its
own session, cookies, token, `{{ user }}` credentials row and the policy's connections.  It logs
in once, when first needed.  An iteration takes a free identity, else a new one up to the cap,
else (fewer identities than iterations in flight) shares a logged-in busy one.

Imports locust (the user class): loaded only through `workload.engine.arrival`.
"""

from __future__ import annotations

from locust import User

from typing import TYPE_CHECKING

from gevent.event import Event

from workload.telemetry.openmodel import ArrivalMeter

if TYPE_CHECKING:
    from locust.env import Environment


class Identities:
    """Logged-in users that iterations borrow: a free one if any, else a new one (logging in)
    up to `cap`, else (fewer identities than iterations in flight) a logged-in busy one, shared."""

    def __init__(self, user_class: type[User], environment: Environment, cap: int, meter: ArrivalMeter):
        self.user_class, self.env, self.cap, self.meter = user_class, environment, cap, meter
        self.free: list[User] = []
        self.ready: list[User] = []  # logged in
        self.created = 0  # logged in or logging in
        self.busy: dict[int, int] = {}
        self.logged_in = Event()
        self._next_shared = 0

    def borrow(self) -> User:
        if self.free:
            user = self.free.pop()  # the most recently used: its connections are the warmest
        elif self.created < self.cap:
            user = self._new()
        else:
            self.logged_in.wait()  # every identity is still logging in: the first one to finish
            user = self.ready[self._next_shared % len(self.ready)]
            self._next_shared += 1
        self.busy[id(user)] = self.busy.get(id(user), 0) + 1
        return user

    def give_back(self, user: User) -> None:
        left = self.busy.get(id(user), 1) - 1
        self.busy[id(user)] = left
        if left == 0:
            self.free.append(user)

    def _new(self) -> User:
        self.created += 1
        self.meter.add("identities")
        user = self.user_class(self.env)
        try:
            user.on_start()  # the scenario's login, once per identity (StopUser: its setup failed)
        except BaseException:
            self.created -= 1  # a later iteration tries a new one
            raise
        self.ready.append(user)
        self.logged_in.set()
        return user
