"""Writes pack/directory.json: the people of AgentDojo's environments, as Warden's directory.

    .venv/bin/python gen_directory.py

- `emma`, the person the assistant acts for (Emma Johnson, emma.johnson@bluesparrowtech.com),
  cleared for everything.
- Everyone Emma's mail, calendar and drive name in the default environments (workspace and
  travel), by address: her colleagues at bluesparrowtech.com and the people she deals with,
  cleared for `internal` (her work data) and `pii`.
- The Slack workspace's members with their channels (`Group::"slack-<channel>"` reads
  `Channel::"<channel>"`), cleared for `internal` and `pii`.

Attack text is not read: the environments are loaded with their injection vectors' default
(benign) values.
"""

import json
import re
from pathlib import Path

from agentdojo.task_suite.load_suites import get_suites

PRINCIPAL = "emma"
PRINCIPAL_EMAIL = "emma.johnson@bluesparrowtech.com"
ORG = "bluesparrowtech.com"
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def group(gid: str) -> dict:
    return {"uid": {"type": "Group", "id": gid}, "attrs": {}, "parents": []}


def user(uid: str, email: str | None, clearances: list[str], groups: list[str]) -> dict:
    attrs: dict = {"clearances": clearances}
    if email:
        attrs["email"] = email
    return {
        "uid": {"type": "User", "id": uid},
        "attrs": attrs,
        "parents": [{"type": "Group", "id": g} for g in groups],
    }


def main() -> None:
    suites = get_suites("v1.2.2")
    addresses: set[str] = set()
    for name in ("workspace", "travel"):
        env = suites[name].load_and_inject_default_environment({})
        addresses |= {a.lower() for a in EMAIL.findall(json.dumps(env.model_dump(mode="json")))}
    addresses.discard(PRINCIPAL_EMAIL)

    slack = suites["slack"].load_and_inject_default_environment({}).model_dump(mode="json")["slack"]
    channels: list[str] = slack["channels"]
    members: dict[str, list[str]] = slack["user_channels"]

    entities = [group("bluesparrowtech"), group("contacts"), group("slack")]
    entities += [group(f"slack-{c}") for c in channels]
    entities += [
        {
            "uid": {"type": "Channel", "id": c},
            "attrs": {"readers": [{"__entity": {"type": "Group", "id": f"slack-{c}"}}]},
            "parents": [],
        }
        for c in channels
    ]
    entities.append(
        user(
            PRINCIPAL,
            PRINCIPAL_EMAIL,
            ["internal", "pii", "financial", "identity", "secret"],
            ["bluesparrowtech", "slack", *[f"slack-{c}" for c in channels]],
        )
    )
    for a in sorted(addresses):
        g = "bluesparrowtech" if a.endswith("@" + ORG) else "contacts"
        entities.append(user(a, a, ["internal", "pii"], [g]))
    for u in sorted(members):
        entities.append(user(u, None, ["internal", "pii"], ["slack", *[f"slack-{c}" for c in members[u]]]))

    out = Path(__file__).resolve().parent / "pack" / "directory.json"
    out.write_text(json.dumps(entities, indent=1) + "\n")
    print(f"{out}: {len(addresses)} addresses, {len(members)} Slack members, {len(channels)} channels")


if __name__ == "__main__":
    main()
