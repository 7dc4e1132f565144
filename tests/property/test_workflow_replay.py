"""Random interleavings of decisions, events, timeouts, controls and engine restarts.

After every step: no step attempt ran twice, and every run and approval the
engine holds in memory equals its replay from the store. At the end every
run that was not terminated can be driven to completion.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from signoff import ApprovalRejected, SignoffError, Step, Workflow, WorkflowEvent
from signoff.testing import WorkflowEnvironment

FLAKY_FAILURES: dict[str, int] = {}


class Order(Workflow):
    name = "order"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        total = await step.do("price", lambda: event.payload["amount"] * 2)
        await self.report_progress({"priced": total})
        try:
            decision = await self.wait_for_approval(step, timeout="1 day", title="order")
        except ApprovalRejected:
            await step.do("compensate", lambda: "refunded")
            return {"outcome": "rejected"}
        shipped = await step.wait_for_event("ship", type="shipped", timeout="2 days")

        def flaky() -> str:
            seen = FLAKY_FAILURES.get(event.id, 0)
            FLAKY_FAILURES[event.id] = seen + 1
            if event.payload["flaky"] and seen == 0:
                raise RuntimeError("first attempt fails")
            return "charged"

        charge = await step.do(
            "charge", flaky, retries={"limit": 3, "delay": "1 minute", "backoff": "constant"}
        )
        await step.sleep("cool-off", "1 hour")
        return {
            "outcome": "done",
            "approved": decision is not None,
            "shipped": shipped,
            "charge": charge,
            "total": total,
        }


class WorkflowReplay(RuleBasedStateMachine):
    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.env = WorkflowEnvironment(Order)
        self.call(self.env.__aenter__())

    def call(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        try:
            self.call(self._drain())
        finally:
            self.call(self.env.__aexit__(None, None, None))
            self.loop.close()

    async def _drain(self) -> None:
        engine = self.env.engine
        page = await engine.get_workflows(limit=500)
        for item in page.items:
            if item.status == "paused":
                await engine.resume_workflow(item.id)
        await self.env.settle()
        for item in (await engine.get_workflows(limit=500)).items:
            for _ in range(3):
                with contextlib.suppress(SignoffError):
                    await engine.approve_workflow(item.id, by="closer")
                with contextlib.suppress(SignoffError):
                    await engine.send_event(item.id, "shipped", {"by": "drain"})
                await self.env.sleep("3 days")
        for item in (await engine.get_workflows(limit=500)).items:
            assert item.status in ("complete", "terminated"), (item.id, item.status)
        self.env.assert_no_step_ran_twice()

    def _try(self, work: Any) -> None:
        with contextlib.suppress(SignoffError):  # refused commands are fine; others fail
            self.call(work)
        self.call(self.env.settle())

    @rule(target=runs, amount=st.integers(1, 100), flaky=st.booleans())
    def start(self, amount: int, flaky: bool) -> str:
        return str(self.call(self.env.run("order", {"amount": amount, "flaky": flaky})))

    @rule(run=runs, who=st.sampled_from(["alice", "bob"]))
    def approve(self, run: str, who: str) -> None:
        self._try(self.env.engine.approve_workflow(run, by=who, metadata={"by": who}))

    @rule(run=runs)
    def reject(self, run: str) -> None:
        self._try(self.env.engine.reject_workflow(run, by="bob", reason="no"))

    @rule(run=runs)
    def ship(self, run: str) -> None:
        self._try(self.env.engine.send_event(run, "shipped", {"carrier": "dhl"}))

    @rule(duration=st.sampled_from(["30 seconds", "2 minutes", "2 hours", "30 hours", "3 days"]))
    def advance(self, duration: str) -> None:
        self.call(self.env.sleep(duration))

    @rule()
    def restart_engine(self) -> None:
        self.call(self.env.restart())
        self.call(self.env.settle())

    @rule(run=runs, action=st.sampled_from(["pause", "resume", "terminate", "restart"]))
    def control(self, run: str, action: str) -> None:
        engine = self.env.engine
        self._try(getattr(engine, f"{action}_workflow")(run))

    @invariant()
    def no_step_attempt_ran_twice(self) -> None:
        self.env.assert_no_step_ran_twice()

    @invariant()
    def replay_gives_the_live_state(self) -> None:
        self.call(self.env.assert_replays())


TestWorkflowReplay = WorkflowReplay.TestCase
TestWorkflowReplay.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
