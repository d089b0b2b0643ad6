"""The catalogue of event types: the document's eight, plus ``test.ping``.

Each type has a description, the shape of its ``data`` (field → type, as the document's
examples show it), the fields that name its subject (required; ``events.schemas`` builds each
type's JSON Schema from the shape and these) and sample data used by test events. No models
here: anything may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_EVENTS = "*"

SEVERITIES = ("low", "medium", "high", "critical")
# The types a shape's fields may have, as the shapes (and GET /ui/api/event-types) show them.
STRING = "string"
BOOLEAN = "boolean"
ARRAY = "array"
TIMESTAMP = "string (ISO 8601)"
SEVERITY = f"string ({', '.join(SEVERITIES)})"


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    payload: str
    data_shape: dict[str, Any]
    sample: dict[str, Any]
    # Paths of the fields that name the event's subject ("policy.id": inside "policy").
    required: tuple[str, ...] = ()


_AGENT = {"id": STRING, "hostname": STRING, "user": STRING}
_SAMPLE_AGENT = {"id": "agt_def456", "hostname": "john-laptop", "user": "user@example.com"}

EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in [
        EventType(
            "threat.detected",
            "Malicious activity detected",
            "Threat details, agent info",
            {
                "threat_id": STRING,
                "severity": SEVERITY,
                "type": STRING,
                "description": STRING,
                "agent": _AGENT,
                "mcp_server": {"name": STRING, "command": STRING},
                "details": {"tool": STRING, "path": STRING, "blocked": BOOLEAN},
            },
            {
                "threat_id": "thr_xyz789",
                "severity": "high",
                "type": "data_exfiltration",
                "description": "Attempted to access sensitive API keys",
                "agent": _SAMPLE_AGENT,
                "mcp_server": {"name": "custom-server", "command": "node server.js"},
                "details": {"tool": "filesystem_read", "path": "/home/user/.env", "blocked": True},
            },
            required=("threat_id", "severity"),
        ),
        EventType(
            "threat.blocked",
            "Threat successfully blocked",
            "Block action, timestamp",
            {"threat_id": STRING, "action": STRING, "blocked_at": TIMESTAMP, "agent": _AGENT},
            {
                "threat_id": "thr_xyz789",
                "action": "tool_call_blocked",
                "blocked_at": "2025-01-15T10:30:01Z",
                "agent": _SAMPLE_AGENT,
            },
            required=("threat_id",),
        ),
        EventType(
            "server.approved",
            "MCP server approved",
            "Server details, approver",
            {
                "server_id": STRING,
                "name": STRING,
                "identity_hash": STRING,
                "approved_by": STRING,
                "application": STRING,
            },
            {
                "server_id": "srv_ghi789",
                "name": "github",
                "identity_hash": "7f8e9d6c5a4b3e2f1a0b9c8d7e6f5a4b3c2d1e0f",
                "approved_by": "admin@example.com",
                "application": "Claude Desktop",
            },
            required=("server_id", "name"),
        ),
        EventType(
            "server.blocked",
            "MCP server blocked",
            "Server details, reason",
            {
                "server_id": STRING,
                "name": STRING,
                "identity_hash": STRING,
                "reason": STRING,
                "blocked_by": STRING,
            },
            {
                "server_id": "srv_jkl012",
                "name": "unknown-shell",
                "identity_hash": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
                "reason": "Executes arbitrary shell commands",
                "blocked_by": "admin@example.com",
            },
            required=("server_id", "name"),
        ),
        EventType(
            "server.pending",
            "New server awaiting approval",
            "Server config, requester",
            {
                "server_id": STRING,
                "name": STRING,
                "config": {"command": STRING, "args": ARRAY},
                "requested_by": STRING,
            },
            {
                "server_id": "srv_mno345",
                "name": "filesystem",
                "config": {"command": "npx", "args": ["@modelcontextprotocol/server-filesystem", "/home/user"]},
                "requested_by": "user@example.com",
            },
            required=("server_id", "name"),
        ),
        EventType(
            "agent.online",
            "Agent came online",
            "Agent ID, device info",
            {"agent_id": STRING, "device": {"hostname": STRING, "os": STRING, "version": STRING}},
            {"agent_id": "agt_def456", "device": {"hostname": "john-laptop", "os": "macOS 15.1", "version": "1.4.2"}},
            required=("agent_id",),
        ),
        EventType(
            "agent.offline",
            "Agent went offline",
            "Agent ID, last seen",
            {"agent_id": STRING, "last_seen": TIMESTAMP},
            {"agent_id": "agt_def456", "last_seen": "2025-01-15T09:58:12Z"},
            required=("agent_id",),
        ),
        EventType(
            "policy.violation",
            "Policy rule violated",
            "Policy details, violation",
            {
                "policy": {"id": STRING, "name": STRING},
                "violation": {"rule": STRING, "description": STRING, "agent": _AGENT},
            },
            {
                "policy": {"id": "pol_pqr678", "name": "No production credentials"},
                "violation": {
                    "rule": "deny_read_env_files",
                    "description": "Read of /srv/app/.env.production",
                    "agent": _SAMPLE_AGENT,
                },
            },
            required=("policy.id",),
        ),
        EventType(
            "test.ping",
            "Test event sent from the dashboard or API",
            "A greeting",
            {"message": STRING},
            {"message": "This is a test event from CyberCage webhooks."},
        ),
    ]
}


def is_known(name: str) -> bool:
    return name in EVENT_TYPES


def unknown_type_message(name: str) -> str:
    """What an unknown event type is told, wherever one is refused: the valid types."""
    return f"Unknown event type {name!r}. Valid types: {', '.join(names())}."


def names() -> list[str]:
    return list(EVENT_TYPES)
