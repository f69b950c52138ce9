"""What the pods of a Job say: whether its command may still run, why it has not
started, how it ended. Pure functions of the pods as the API returns them (dicts), so
that a Job deleted by someone else, a pod that can never start and a container that
could not exec are each told apart from a plain exit code."""

from __future__ import annotations

from typing import Any, Literal

_FINISHED = ("Succeeded", "Failed")
# Waiting reasons that only say the kubelet is at work: the events say why it is stuck.
_BUSY = ("ContainerCreating", "PodInitializing")


def alive(pods: list[dict[str, Any]]) -> list[str]:
    """The pods whose command runs or may still start: not yet Succeeded or Failed (a
    pod being deleted runs until its grace period ends; a pending one may start)."""
    return [p["metadata"]["name"] for p in pods if _status(p).get("phase") not in _FINISHED]


def not_started(pods: list[dict[str, Any]]) -> str | None:
    """Why the Job's pod has not started its command; None once one runs or has run."""
    if not pods or any(_status(p).get("phase") != "Pending" for p in pods):
        return None
    status = _status(pods[-1])
    states = [c.get("state") or {} for c in _containers(status)]
    if any("running" in s for s in states):
        return None  # an init container at work: started
    told = _reasons(states, status)
    if told:
        return told[0]
    waiting = [s["waiting"].get("reason") for s in states if s.get("waiting")]
    return f"its pod {pods[-1]['metadata']['name']} is still {next(iter(waiting), 'Pending')}"


def _containers(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _reasons(states: list[dict[str, Any]], status: dict[str, Any]) -> list[str]:
    """What a pending pod says of why it waits: a container's reason (ImagePullBackOff,
    CreateContainerConfigError...), else the scheduler's (Unschedulable)."""
    waiting = [s["waiting"] for s in states if s.get("waiting")]
    told = [w for w in waiting if w.get("reason") not in (None, *_BUSY)]
    told += [c for c in status.get("conditions") or [] if _unschedulable(c)]
    return [_said(w) for w in told]


def _unschedulable(condition: dict[str, Any]) -> bool:
    return condition.get("type") == "PodScheduled" and condition.get("status") == "False"


def ended(pods: list[dict[str, Any]]) -> tuple[int | None, str | None]:
    """The exit code of the latest pod's command and, where Kubernetes says more than a
    code (OOMKilled, a StartError: a command not found in the image; the pod Evicted by
    its node), what."""
    for pod in reversed(pods):
        evicted = _said(_status(pod)) if _status(pod).get("reason") else None
        for c in _status(pod).get("containerStatuses") or []:
            terminated = (c.get("state") or {}).get("terminated")
            if terminated is not None:
                why = terminated.get("reason")
                detail = None if why in (None, "Completed", "Error") else _said(terminated)
                return int(terminated.get("exitCode", 0)), evicted or detail
        if evicted:  # ended before any container did
            return None, evicted
    return None, None


def failure(code: int | None, detail: str | None, found: bool) -> str:
    """Why a Job failed that says no more than that (BackoffLimitExceeded)."""
    if code is not None:
        return f"exit code {code}" + (f": {detail}" if detail else "")
    gone = "its pod was deleted or evicted before it ended"
    return detail or ("the Job failed" if found else gone)


def deleted(
    name: str, code: int | None, detail: str | None
) -> tuple[Literal["succeeded", "failed", "lost"], int | None, str]:
    """How an attempt ended whose Job someone deleted: as its pod did, where that ended
    on its own (an orphan); else not known (lost)."""
    said = f"the Job {name} was deleted before its end was recorded"
    if code is None:
        return "lost", None, said
    said += f"; its pod ended with exit code {code}" + (f": {detail}" if detail else "")
    return ("succeeded" if code == 0 else "failed"), code, said


def _status(pod: dict[str, Any]) -> dict[str, Any]:
    return pod.get("status") or {}


def _said(what: dict[str, Any]) -> str:
    reason, message = what.get("reason"), (what.get("message") or "").strip()
    return f"{reason}: {message}" if message else str(reason)
