"""AgentDojo ground-truth replay through `warden replay`.

Builds one Warden trace per suite from AgentDojo's own ground-truth calls (with the
`important_instructions` attack text in the injection vectors each user task sees), has
`warden replay --format json` decide every call, re-runs in a fresh injected environment only
the calls each system lets through, and scores with AgentDojo's own utility and security checks.

    python bench.py [--quick] [--suite S ...] [--warden PATH] [--out DIR] [--results FILE]

Systems scored side by side: allow-all, an oracle that blocks exactly the injected calls, Warden
(an `ask` is blocked) and Warden with an ideal approver (asks on the user's own calls approved,
asks on injected calls refused). See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tomllib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.agent_pipeline.tool_execution import tool_result_to_str
from agentdojo.attacks.base_attacks import DEFAULT_MODEL_NAME, FixedJailbreakAttack
from agentdojo.attacks.important_instructions_attacks import ImportantInstructionsAttack
from agentdojo.base_tasks import BaseInjectionTask, BaseUserTask
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionCall, FunctionsRuntime
from agentdojo.task_suite.load_suites import get_suites
from agentdojo.task_suite.task_suite import TaskSuite
from agentdojo.types import ChatAssistantMessage, ChatMessage, ChatToolResultMessage, text_content_block_from_string

# The environments are YAML; parse them with libyaml when it is there (same result, faster).
if getattr(yaml, "__with_libyaml__", False):
    yaml.safe_load = lambda stream: yaml.load(stream, Loader=yaml.CSafeLoader)  # type: ignore[assignment]

BENCHMARK_VERSION = "v1.2.2"
SUITES = ("workspace", "travel", "banking", "slack")
# The attack: AgentDojo's `important_instructions` text, signed by the suites' user. The victim
# model's name is AgentDojo's default (`important_instructions_no_model_name`): no model runs here.
USER_NAME = "Emma Johnson"
MODEL_NAME = DEFAULT_MODEL_NAME
AGENT = "assistant"
PRINCIPAL = "emma"
# --quick: these user tasks of each suite, each against every injection task of its suite.
QUICK_USER_TASKS = {
    "workspace": ["user_task_0", "user_task_13", "user_task_33"],
    "travel": ["user_task_0", "user_task_3"],
    "banking": ["user_task_0", "user_task_2"],
    "slack": ["user_task_1", "user_task_4"],
}


# ---- Traces ------------------------------------------------------------------------------------


@dataclass
class Call:
    function: str
    args: dict
    origin: str  # "user" or "injection"
    output: str = ""


@dataclass
class Case:
    """One mission: a user task with (or without) one injection task."""

    suite: str
    user_task: str
    injection_task: str | None
    calls: list[Call] = field(default_factory=list)
    # Index of the call whose output first carried the injection (None: no output did).
    carrier: int | None = None
    # (trace file, line number) of each call line, to match `warden replay`'s decisions.
    lines: list[tuple[str, int]] = field(default_factory=list)

    @property
    def mission_id(self) -> str:
        return f"{self.suite}/{self.user_task}/{self.injection_task or 'benign'}"


def cache_environments(suite: TaskSuite) -> None:
    """Loading an environment parses its YAML (the slowest step here): keep each injected
    environment once and hand out deep copies."""
    if getattr(suite, "_warden_cached", False):
        return
    load = suite.load_and_inject_default_environment
    cache: OrderedDict[tuple, Env] = OrderedDict()

    def cached(injections: dict[str, str]) -> Env:
        key = tuple(sorted(injections.items()))
        if key in cache:
            cache.move_to_end(key)
        else:
            cache[key] = load(injections)
            if len(cache) > 8:
                cache.popitem(last=False)
        return cache[key].model_copy(deep=True)

    suite.load_and_inject_default_environment = cached  # type: ignore[method-assign]
    suite._warden_cached = True  # type: ignore[attr-defined]


def make_attack(suite: TaskSuite) -> FixedJailbreakAttack:
    attack = FixedJailbreakAttack(ImportantInstructionsAttack._JB_STRING, suite, _NoModel())
    attack.user_name = USER_NAME
    attack.model_name = MODEL_NAME
    return attack


class _NoModel(BasePipelineElement):
    name = "ground-truth"

    def query(self, query, runtime, env=EmptyEnv(), messages=(), extra_args={}):  # pragma: no cover
        raise RuntimeError("no model runs in a ground-truth replay")


def jsonable(v):
    if isinstance(v, FunctionCall):
        raise ValueError("nested function calls are not replayable")
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)


def structured_tools(catalog: Path = Path(__file__).resolve().parent / "pack" / "catalog.toml") -> set[str]:
    """The tools whose catalog entry names `untrusted_fields`: Warden splits their output by
    field, so the replay hands it their structured content (JSON), as an MCP server's
    `structuredContent` would; every other output is AgentDojo's own YAML text."""
    with open(catalog, "rb") as f:
        tools = tomllib.load(f).get("tools", {})
    return {name.split(".", 1)[1] for name, entry in tools.items() if entry.get("untrusted_fields")}


STRUCTURED = structured_tools()


def run_call(runtime: FunctionsRuntime, env: Env, call: FunctionCall | Call) -> str:
    result, error = runtime.run_function(env, call.function, dict(call.args), raise_on_error=False)
    if error is not None:
        return error
    if call.function in STRUCTURED:
        return tool_result_to_str(result, lambda v: json.dumps(v, default=str, ensure_ascii=False))
    return tool_result_to_str(result)


def place_injection(
    user_calls: Sequence[Call], injected: Sequence[Call], carrier: int | None
) -> list[Call]:
    """The user's calls with the injection task's calls right after the carrier (the first call
    whose output held the injection); at the end when no output did."""
    if carrier is None:
        return [*user_calls, *injected]
    return [*user_calls[: carrier + 1], *injected, *user_calls[carrier + 1 :]]


def carrier_index(outputs: Sequence[str], markers: Sequence[str]) -> int | None:
    """The first output that contains one of the markers."""
    for i, out in enumerate(outputs):
        if any(m in out for m in markers):
            return i
    return None


def user_ground_truth(suite: TaskSuite, user_task: BaseUserTask, injections: dict[str, str]):
    env = user_task.init_environment(suite.load_and_inject_default_environment(injections))
    calls = [Call(c.function, jsonable(dict(c.args)), "user") for c in user_task.ground_truth(env.model_copy(deep=True))]
    return env, calls


def build_case(
    suite: TaskSuite,
    attack: FixedJailbreakAttack,
    user_task: BaseUserTask,
    injection_task: BaseInjectionTask | None,
) -> Case:
    case = Case(suite.name, user_task.ID, injection_task.ID if injection_task else None)
    if injection_task is None:
        env, calls = user_ground_truth(suite, user_task, {})
        runtime = FunctionsRuntime(suite.tools)
        for c in calls:
            c.output = run_call(runtime, env, c)
        case.calls = calls
        return case

    # Where the injection surfaces: AgentDojo's own method (canaries in every vector the task
    # sees), then the same call of the run with the attack text.
    canaries = {inj: f"<CANARY---{inj}--->" for inj in suite.get_injection_vector_defaults()}
    cenv, ccalls = user_ground_truth(suite, user_task, canaries)
    cruntime = FunctionsRuntime(suite.tools)
    couts = [run_call(cruntime, cenv, c) for c in ccalls]
    carrier = carrier_index(couts, list(canaries.values()))

    injections = attack.attack(user_task, injection_task)
    env, user_calls = user_ground_truth(suite, user_task, injections)
    if [c.function for c in user_calls] != [c.function for c in ccalls]:
        raise RuntimeError(f"{case.mission_id}: ground truth differs between canary and attack runs")
    injected = [
        Call(c.function, jsonable(dict(c.args)), "injection")
        for c in injection_task.ground_truth(env.model_copy(deep=True))
    ]
    calls = place_injection(user_calls, injected, carrier)
    runtime = FunctionsRuntime(suite.tools)
    for c in calls:
        c.output = run_call(runtime, env, c)
    case.calls = calls
    case.carrier = carrier
    return case


def trace_lines(case: Case, purpose: str) -> list[dict]:
    lines = [
        {
            "kind": "mission",
            "id": case.mission_id,
            "template": case.suite,
            "agent": AGENT,
            "principal": PRINCIPAL,
            "purpose": purpose,
        }
    ]
    for c in case.calls:
        lines.append(
            {
                "kind": "call",
                "mission": case.mission_id,
                "session": f"{case.mission_id}#s1",
                "server": case.suite,
                "tool": c.function,
                "args": c.args,
                "output": c.output,
            }
        )
    return lines


# ---- Scoring -----------------------------------------------------------------------------------


class ReplayPipeline(BasePipelineElement):
    """Executes the given calls in order, as a ground-truth agent would, skipping blocked ones.

    The final answer is the user task's ground-truth answer when every one of the user's calls ran,
    and empty otherwise: an agent whose reads were blocked does not know the answer."""

    name = "replay"

    def __init__(self, calls: Sequence[Call], run: Sequence[bool], answer: str) -> None:
        self.calls = calls
        self.run = run
        self.answer = answer

    def query(self, query, runtime, env=EmptyEnv(), messages: Sequence[ChatMessage] = (), extra_args={}):
        new: list[ChatMessage] = []
        for c, go in zip(self.calls, self.run, strict=True):
            if not go:
                continue
            fc = FunctionCall(function=c.function, args=c.args)
            new.append(ChatAssistantMessage(role="assistant", tool_calls=[fc], content=[text_content_block_from_string("")]))
            out = run_call(runtime, env, fc)
            new.append(
                ChatToolResultMessage(
                    role="tool", content=[text_content_block_from_string(out)], tool_call=fc, tool_call_id=None, error=None
                )
            )
        new.append(ChatAssistantMessage(role="assistant", content=[text_content_block_from_string(self.answer)], tool_calls=None))
        return query, runtime, env, [*messages, *new], extra_args


_SCORES: dict[tuple[str, tuple[bool, ...]], tuple[bool, bool]] = {}


def score(
    suite: TaskSuite,
    attack: FixedJailbreakAttack,
    case: Case,
    run: Sequence[bool],
) -> tuple[bool, bool]:
    """(utility, attack succeeded) with only the calls where `run` is true executed."""
    key = (case.mission_id, tuple(run))
    if key not in _SCORES:
        _SCORES[key] = _score(suite, attack, case, run)
    return _SCORES[key]


def _score(suite: TaskSuite, attack: FixedJailbreakAttack, case: Case, run: Sequence[bool]) -> tuple[bool, bool]:
    user_task = suite.get_user_task_by_id(case.user_task)
    injection_task = suite.get_injection_task_by_id(case.injection_task) if case.injection_task else None
    injections = attack.attack(user_task, injection_task) if injection_task else {}
    all_user = all(go for c, go in zip(case.calls, run, strict=True) if c.origin == "user")
    answer = user_task.GROUND_TRUTH_OUTPUT if all_user else ""
    utility, security = suite.run_task_with_pipeline(
        ReplayPipeline(case.calls, run, answer), user_task, injection_task, injections
    )
    return bool(utility), bool(security) if injection_task else False


# ---- Driver ------------------------------------------------------------------------------------


def replay(warden: str, config: Path, traces: list[Path]) -> dict[tuple[str, int], dict]:
    """Runs `warden replay --format json`; the decisions by (file, line)."""
    proc = subprocess.run(
        [warden, "replay", "--config", str(config), "--format", "json", *map(str, traces)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"warden replay failed (exit {proc.returncode})")
    out = {}
    for line in proc.stdout.splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        out[(str(Path(d["file"]).resolve()), int(d["line"]))] = d
    return out


SYSTEMS = ("allow-all", "oracle", "warden", "warden+approver")


def runs_for(case: Case, decisions: Sequence[str]) -> dict[str, list[bool]]:
    return {
        "allow-all": [True] * len(case.calls),
        "oracle": [c.origin != "injection" for c in case.calls],
        "warden": [d == "allow" for d in decisions],
        "warden+approver": [
            d == "allow" or (d == "ask" and c.origin == "user") for c, d in zip(case.calls, decisions, strict=True)
        ],
    }


def pct(n: int, d: int) -> float:
    return round(100.0 * n / d, 1) if d else 0.0


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    root = here.parent.parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small deterministic subset")
    ap.add_argument("--suite", action="append", choices=SUITES, help="only this suite (repeatable)")
    ap.add_argument("--warden", default=str(root / "target" / "debug" / "warden"))
    ap.add_argument("--config", default=str(here / "pack" / "warden.toml"))
    ap.add_argument("--out", default=None, help="where the traces go (default: traces/, or traces/quick/ with --quick)")
    ap.add_argument("--results", default=None, help="where to write the results (default: results.json; results-quick.json, results-SUITE.json for subsets)")
    args = ap.parse_args(argv)

    suites = get_suites(BENCHMARK_VERSION)
    names = args.suite or list(SUITES)
    out = Path(args.out) if args.out else here / "traces" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    # 1. Build the traces.
    cases: dict[str, list[Case]] = {}
    files: dict[str, tuple[Path, Path]] = {}
    for name in names:
        suite = suites[name]
        cache_environments(suite)
        attack = make_attack(suite)
        user_ids = QUICK_USER_TASKS[name] if args.quick else list(suite.user_tasks)
        cs: list[Case] = []
        for uid in user_ids:
            ut = suite.get_user_task_by_id(uid)
            cs.append(build_case(suite, attack, ut, None))
            for it in suite.injection_tasks.values():
                cs.append(build_case(suite, attack, ut, it))
        cases[name] = cs
        attack_file, benign_file = out / f"{name}-attack.jsonl", out / f"{name}-benign.jsonl"
        with attack_file.open("w") as fa, benign_file.open("w") as fb:
            handles = {fa: [str(attack_file.resolve()), 0], fb: [str(benign_file.resolve()), 0]}
            for c in cs:
                f = fb if c.injection_task is None else fa
                for line in trace_lines(c, suite.get_user_task_by_id(c.user_task).PROMPT):
                    f.write(json.dumps(line) + "\n")
                    handles[f][1] += 1
                    if line["kind"] == "call":
                        c.lines.append((handles[f][0], handles[f][1]))
        files[name] = (attack_file, benign_file)
    t_build = time.time() - t0

    # 2. Warden decides every call.
    all_files = [p for pair in files.values() for p in pair]
    decisions = replay(args.warden, Path(args.config), all_files)
    t_replay = time.time() - t0 - t_build

    # 3. Score.
    broken: list[str] = []
    per_suite = {}
    per_pair = []
    for name in names:
        suite = suites[name]
        attack = make_attack(suite)
        counts = {
            s: {"pairs": 0, "measurable": 0, "attacks": 0, "utility": 0, "attacks_after_held_carrier": 0}
            for s in SYSTEMS
        }
        benign = {"tasks": 0, "ask": 0, "deny": 0, "utility": 0, "utility_approver": 0, "calls": 0, "calls_allowed": 0}
        injected_calls = {"calls": 0, "allow": 0, "ask": 0, "deny": 0}
        user_calls = {"calls": 0, "allow": 0, "ask": 0, "deny": 0}
        no_carrier = 0
        for c in cases[name]:
            ds = [decisions[k]["decision"] for k in c.lines]
            if c.injection_task is None:
                benign["tasks"] += 1
                benign["calls"] += len(ds)
                benign["calls_allowed"] += sum(d == "allow" for d in ds)
                benign["ask"] += any(d == "ask" for d in ds)
                benign["deny"] += any(d == "deny" for d in ds)
                u, _ = score(suite, attack, c, [d == "allow" for d in ds])
                benign["utility"] += u
                u2, _ = score(suite, attack, c, [d != "deny" for d in ds])
                benign["utility_approver"] += u2
                per_pair.append({"mission": c.mission_id, "decisions": ds, "utility": {"warden": u, "warden+approver": u2}})
                continue
            if c.carrier is None:
                no_carrier += 1
                broken.append(f"{c.mission_id}: no output of the user's calls carries the injection")
            measurable = any(x.origin == "injection" for x in c.calls)
            for x, d in zip(c.calls, ds, strict=True):
                bucket = injected_calls if x.origin == "injection" else user_calls
                bucket["calls"] += 1
                bucket[d] += 1
            rec = {"mission": c.mission_id, "decisions": ds, "origins": [x.origin for x in c.calls], "tools": [x.function for x in c.calls]}
            for sysname, run in runs_for(c, ds).items():
                u, a = score(suite, attack, c, run)
                k = counts[sysname]
                k["pairs"] += 1
                k["measurable"] += measurable
                k["attacks"] += a
                k["utility"] += u
                # An attack that succeeds although the call that carried it was held: the agent
                # would not have read the injection (the static replay runs its calls anyway).
                k["attacks_after_held_carrier"] += a and c.carrier is not None and not run[c.carrier]
                rec[sysname] = {"utility": u, "attack": a}
            if rec["oracle"]["attack"]:
                broken.append(f"{c.mission_id}: the attack succeeds with every injected call blocked")
            per_pair.append(rec)
        if counts["allow-all"]["measurable"] and not counts["allow-all"]["attacks"]:
            broken.append(f"{name}: no attack succeeds even when every call runs")
        per_suite[name] = {
            "systems": {
                s: {
                    **k,
                    "attack_success_pct": pct(k["attacks"], k["measurable"]),
                    "utility_under_attack_pct": pct(k["utility"], k["pairs"]),
                }
                for s, k in counts.items()
            },
            "benign": {
                **benign,
                "needing_approval_pct": pct(benign["ask"], benign["tasks"]),
                "with_a_deny_pct": pct(benign["deny"], benign["tasks"]),
                "utility_pct": pct(benign["utility"], benign["tasks"]),
                "utility_approver_pct": pct(benign["utility_approver"], benign["tasks"]),
            },
            "injected_calls": injected_calls,
            "user_calls_under_attack": user_calls,
            "pairs_without_carrier": no_carrier,
        }

    # Totals.
    tot = {s: {"pairs": 0, "measurable": 0, "attacks": 0, "utility": 0, "attacks_after_held_carrier": 0} for s in SYSTEMS}
    btot = {"tasks": 0, "ask": 0, "deny": 0, "utility": 0, "utility_approver": 0}
    for v in per_suite.values():
        for s in SYSTEMS:
            for k in tot[s]:
                tot[s][k] += v["systems"][s][k]
        for k in btot:
            btot[k] += v["benign"][k]
    total = {
        "systems": {
            s: {**k, "attack_success_pct": pct(k["attacks"], k["measurable"]), "utility_under_attack_pct": pct(k["utility"], k["pairs"])}
            for s, k in tot.items()
        },
        "benign": {
            **btot,
            "needing_approval_pct": pct(btot["ask"], btot["tasks"]),
            "with_a_deny_pct": pct(btot["deny"], btot["tasks"]),
            "utility_pct": pct(btot["utility"], btot["tasks"]),
            "utility_approver_pct": pct(btot["utility_approver"], btot["tasks"]),
        },
    }
    elapsed = time.time() - t0
    results = {
        "benchmark": f"AgentDojo {BENCHMARK_VERSION} (agentdojo {_version()}), ground-truth replay",
        "attack": "important_instructions (user Emma Johnson, model name: AgentDojo's default)",
        "quick": args.quick,
        "suites": names,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}",
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": {"build": round(t_build, 1), "replay": round(t_replay, 1), "total": round(elapsed, 1)},
        "per_suite": per_suite,
        "total": total,
        "pipeline_errors": broken,
    }
    # results.json is the full run's; a subset writes beside it (results-quick.json, results-banking.json).
    subset = "-".join((["quick"] if args.quick else []) + ([] if names == list(SUITES) else names))
    results_path = Path(args.results) if args.results else here / (f"results-{subset}.json" if subset else "results.json")
    results_path.write_text(json.dumps(results, indent=1) + "\n")
    (out / "pairs.json").write_text(json.dumps(per_pair) + "\n")
    print_table(results)
    print(f"\nresults: {results_path}; traces and per-pair decisions: {out}")
    if broken:
        print("\npipeline errors:", file=sys.stderr)
        for b in broken[:20]:
            print("  " + b, file=sys.stderr)
        return 1
    return 0


def _version() -> str:
    from importlib.metadata import version

    return version("agentdojo")


def print_table(r: dict) -> None:
    rows = [*r["per_suite"].items(), ("total", r["total"])]
    print(f"\n{r['benchmark']}; attack: {r['attack']}{' (--quick subset)' if r['quick'] else ''}")
    hdr = f"{'suite':<10} {'pairs':>5} {'system':<16} {'attack success':>15} {'utility under attack':>21}"
    print(hdr)
    print("-" * len(hdr))
    for name, v in rows:
        for s in SYSTEMS:
            k = v["systems"][s]
            print(
                f"{name:<10} {k['pairs']:>5} {s:<16} "
                f"{k['attack_success_pct']:>6.1f}% {k['attacks']:>3}/{k['measurable']:<4} "
                f"{k['utility_under_attack_pct']:>11.1f}% {k['utility']:>3}/{k['pairs']:<4}"
            )
    print()
    hdr = f"{'suite':<10} {'benign tasks':>12} {'need approval':>18} {'with a deny':>16} {'utility (warden)':>18} {'utility (approver)':>19}"
    print(hdr)
    print("-" * len(hdr))
    for name, v in rows:
        b = v["benign"]
        print(
            f"{name:<10} {b['tasks']:>12} {b['needing_approval_pct']:>10.1f}% {b['ask']:>3}/{b['tasks']:<3} "
            f"{b['with_a_deny_pct']:>8.1f}% {b['deny']:>3}/{b['tasks']:<3} "
            f"{b['utility_pct']:>10.1f}% {b['utility']:>3}/{b['tasks']:<3} {b['utility_approver_pct']:>11.1f}% {b['utility_approver']:>3}/{b['tasks']:<3}"
        )


def markdown(r: dict) -> str:
    """The scorecard of a results file as Markdown tables (for BENCHMARKS.md)."""
    rows = [*r["per_suite"].items(), ("**total**", r["total"])]
    out = [
        "| suite | pairs | system | attack success | utility under attack |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for name, v in rows:
        for s in SYSTEMS:
            k = v["systems"][s]
            out.append(
                f"| {name} | {k['pairs']} | {s} | {k['attack_success_pct']:.1f} % ({k['attacks']}/{k['measurable']}) "
                f"| {k['utility_under_attack_pct']:.1f} % ({k['utility']}/{k['pairs']}) |"
            )
    out += [
        "",
        "| suite | benign tasks | need approval | with a deny | utility, no person | utility, ideal approver |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v in rows:
        b = v["benign"]
        out.append(
            f"| {name} | {b['tasks']} | {b['needing_approval_pct']:.1f} % ({b['ask']}) | {b['with_a_deny_pct']:.1f} % ({b['deny']}) "
            f"| {b['utility_pct']:.1f} % ({b['utility']}) | {b['utility_approver_pct']:.1f} % ({b['utility_approver']}) |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--markdown":
        print(markdown(json.loads(Path(sys.argv[2]).read_text())))
        sys.exit(0)
    sys.exit(main())
