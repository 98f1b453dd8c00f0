"""Workflows: validated, stored, and announced to their supervisor and channel; and the
webhooks that start them, remembered and checked against their signature.

A workflow with a webhook_secret only accepts calls signed with it:
`X-Weft-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from uuid import UUID, uuid4

from blocks.registry import BlockRegistry
from runner.engine.messages import GraphUpdated
from runner.errors import (
    BadSignatureError,
    HookNotFoundError,
    InvalidGraphError,
    SignatureRequiredError,
    WorkflowNotFoundError,
)
from runner.graph.plan import ExecutionPlan, build_plan
from runner.graph.shape import Graph
from runner.live.bus import EventBus
from runner.live.events import WorkflowUpdated
from runner.models import MAX_NAME_LENGTH, Durability, Hook, RateLimit, Workflow
from runner.runtime.mailboxes import Mailboxes
from runner.store.protocol import Store

SIGNATURE_HEADER = "X-Weft-Signature"
# Webhooks looked up lately (slug → workflow id and secret). Each run insert re-checks the
# slug and secret it was verified against, so a stale entry costs a lookup, never a run.
HOOK_CACHE_SIZE = 10_000
# How long a workflow's rate limit (or that it has none) is remembered: a change here or one
# another process tells of forgets it at once; this bounds a change whose notice was lost
# (the listener was reconnecting), at one lookup per workflow every few seconds.
RATE_LIMIT_CACHE_S = 5.0


def copy_name(name: str) -> str:
    """The name of a copy: "<name> (copy)", the name shortened to keep it a valid name."""
    suffix = " (copy)"
    return name[: MAX_NAME_LENGTH - len(suffix)] + suffix


def signature_of(secret: str, body: bytes) -> str:
    """The X-Weft-Signature value for a body signed with a secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _signed_with(secret: str, body: bytes, signature: str | None) -> bool:
    if not signature:
        raise SignatureRequiredError(f"this webhook requires a {SIGNATURE_HEADER} header")
    return hmac.compare_digest(signature.strip().encode(), signature_of(secret, body).encode())


class Workflows:
    """Creates, overwrites and deletes workflows; finds and verifies their webhooks."""

    def __init__(
        self, store: Store, registry: BlockRegistry, events: EventBus, mailboxes: Mailboxes
    ) -> None:
        self._store = store
        self.registry = registry
        self._events = events
        self._mailboxes = mailboxes
        self._hooks: dict[str, Hook] = {}
        self._limits: dict[UUID, tuple[float, RateLimit | None]] = {}  # with their expiry
        self._limit_changes = 0  # how many were forgotten (a lookup meanwhile may be stale)

    def validate_graph(self, graph: Graph, *, saving: bool = False) -> ExecutionPlan:
        """The graph's execution plan; InvalidGraphError lists every problem (`saving`: with
        the checks of a graph being saved)."""
        return build_plan(graph, self.registry, saving=saving)

    async def create(
        self,
        *,
        name: str,
        graph: Graph,
        webhook_slug: str | None,
        webhook_secret: str | None,
        max_concurrency: int | None = None,
        durability: Durability = Durability.SYNC,
        description: str = "",
        tags: tuple[str, ...] = (),
        rate_limit: RateLimit | None = None,
    ) -> Workflow:
        self.validate_graph(graph, saving=True)
        return await self._store.create_workflow(
            workflow_id=uuid4(),
            name=name,
            webhook_slug=webhook_slug or secrets.token_hex(8),
            webhook_secret=webhook_secret,
            graph=graph.to_json(),
            max_concurrency=max_concurrency,
            durability=durability,
            description=description,
            tags=tags,
            rate_limit=rate_limit,
        )

    async def duplicate(self, workflow_id: UUID, *, name: str | None = None) -> Workflow:
        """A copy of the workflow named `name` (else "<name> (copy)"): its graph (validated
        again: the blocks may have changed), description, tags, max_concurrency and
        durability. A new random webhook slug; the webhook secret is NOT copied (the copy's
        webhook takes unsigned calls until one is set), nor are runs. Its rate limit is
        copied, but not what the original used of it."""
        original = await self._store.get_workflow(workflow_id)
        build_plan(original.graph, self.registry)
        return await self._store.create_workflow(
            workflow_id=uuid4(),
            name=name or copy_name(original.name),
            webhook_slug=secrets.token_hex(8),
            webhook_secret=None,
            graph=original.graph,
            max_concurrency=original.max_concurrency,
            durability=original.durability,
            description=original.description,
            tags=original.tags,
            rate_limit=original.rate_limit,
        )

    async def update(
        self,
        workflow_id: UUID,
        *,
        name: str,
        graph: Graph,
        webhook_slug: str | None,
        webhook_secret: str | None,
        keep_secret: bool = False,
        max_concurrency: int | None = None,
        durability: Durability = Durability.SYNC,
        description: str | None = None,
        tags: tuple[str, ...] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> Workflow:
        """Overwrite a workflow (the slug, description and tags are kept when None, the
        secret with `keep_secret`; a rate_limit of None clears it); its supervisor, if any,
        takes the new plan; runs in flight keep theirs."""
        plan = self.validate_graph(graph, saving=True)
        workflow = await self._store.update_workflow(
            workflow_id,
            name=name,
            webhook_slug=webhook_slug,
            webhook_secret=webhook_secret,
            keep_secret=keep_secret,
            graph=graph.to_json(),
            max_concurrency=max_concurrency,
            durability=durability,
            description=description,
            tags=tags,
            rate_limit=rate_limit,
        )
        self._hooks.clear()
        self._forget_limit(workflow_id)
        self._events.publish_workflow(workflow_id, WorkflowUpdated(workflow.to_json()))
        message = GraphUpdated(workflow.graph, plan, workflow.max_concurrency)
        await self._mailboxes.send(workflow_id, message, start=False)
        return workflow

    async def delete(self, workflow_id: UUID) -> None:
        await self._store.delete_workflow(workflow_id)
        self._hooks.clear()
        self._forget_limit(workflow_id)

    async def changed_elsewhere(self, workflow_id: UUID) -> None:
        """Another process overwrote or deleted the workflow: forget remembered webhooks;
        tell the channel and the supervisor here of the new version."""
        self._hooks.clear()
        self._forget_limit(workflow_id)
        try:
            workflow = await self._store.get_workflow(workflow_id)
        except WorkflowNotFoundError:
            return
        self._events.publish_workflow(workflow_id, WorkflowUpdated(workflow.to_json()))
        if not self._mailboxes.has(workflow_id):
            return
        try:
            plan = build_plan(workflow.graph, self.registry)
        except InvalidGraphError:
            return  # its runs fail with the problems when they start
        message = GraphUpdated(workflow.graph, plan, workflow.max_concurrency)
        await self._mailboxes.send(workflow_id, message, start=False)

    # -- webhooks --------------------------------------------------------------------------

    async def find_hook(self, slug: str, *, fresh: bool = False) -> Hook:
        """The webhook with this slug, from memory unless `fresh`."""
        hook = None if fresh else self._hooks.get(slug)
        if hook is not None:
            return hook
        changes = self._limit_changes
        hook = await self._store.find_hook(slug)
        if hook is None:
            self._hooks.pop(slug, None)
            raise HookNotFoundError(f"no webhook {slug!r}")
        if len(self._hooks) >= HOOK_CACHE_SIZE:
            self._hooks.clear()
        self._hooks[slug] = hook
        self._remember_limit(hook.workflow_id, hook.rate_limit, changes)
        return hook

    async def verified_hook(
        self, slug: str, body: bytes, signature: str | None, *, fresh: bool = False
    ) -> Hook:
        """The webhook, its signature checked (against a fresh copy when the remembered
        secret does not match: another process may have changed it)."""
        hook = await self.find_hook(slug, fresh=fresh)
        if hook.secret and not fresh and not _signed_with(hook.secret, body, signature):
            hook = await self.find_hook(slug, fresh=True)
        if hook.secret and not _signed_with(hook.secret, body, signature):
            raise BadSignatureError(
                f"{SIGNATURE_HEADER} does not match: sign the raw body with HMAC-SHA256 "
                "and send sha256=<hex>"
            )
        return hook

    # -- rate limits -----------------------------------------------------------------------

    async def rate_limit(self, workflow_id: UUID) -> RateLimit | None:
        """The workflow's rate limit, from memory when known (a webhook's lookup brings it):
        a workflow without one costs no statement."""
        known = self._limits.get(workflow_id)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        changes = self._limit_changes
        limit = await self._store.get_rate_limit(workflow_id)
        self._remember_limit(workflow_id, limit, changes)
        return limit

    def _remember_limit(self, workflow_id: UUID, limit: RateLimit | None, changes: int) -> None:
        """Remember what was read, unless a change was told while it was read."""
        if changes != self._limit_changes:
            return
        if len(self._limits) >= HOOK_CACHE_SIZE:
            self._limits.clear()
        self._limits[workflow_id] = (time.monotonic() + RATE_LIMIT_CACHE_S, limit)

    def _forget_limit(self, workflow_id: UUID) -> None:
        self._limits.pop(workflow_id, None)
        self._limit_changes += 1
