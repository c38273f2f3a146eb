// The official TypeScript MCP SDK against @modelcontextprotocol/server-everything: prompts,
// resources, progress and cancellation, directly and through Warden (`warden proxy` and
// `warden serve`), with the same results. Run with `node --test` from tests/e2e.
//
// WARDEN_E2E_TARGET=direct runs only the direct connection.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, cpSync, readFileSync, writeFileSync, rmSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";

import { OP_TIMEOUT_MS, startHttp } from "./ts_harness.mjs";

const E2E = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(E2E, "..", "..");
const WARDEN = process.env.WARDEN_BIN ?? join(REPO, "target", "debug", "warden");
const EVERYTHING = join(E2E, "node_modules", ".bin", "mcp-server-everything");
const DIRECT = (process.env.WARDEN_E2E_TARGET ?? "warden") === "direct";
const STATIC_DOC = "demo://resource/static/document/features.md";

function renderConfig(dir) {
  cpSync(join(E2E, "everything"), dir, { recursive: true });
  const cfg = join(dir, "warden.toml");
  writeFileSync(cfg, readFileSync(cfg, "utf8").replaceAll("{{E2E_DIR}}", E2E.replaceAll("\\", "\\\\")));
  return cfg;
}

const texts = (content) => (content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");

for (const kind of DIRECT ? ["direct"] : ["direct", "proxy", "serve"]) {
  describe(`TypeScript SDK and server-everything (${kind})`, () => {
    let work;
    let server;
    let client;
    const n = (bare) => (kind === "direct" ? bare : `everything.${bare}`);

    let config;
    let headers;
    let log;

    // A new connection to the same target: over `proxy` a second Warden process (another
    // session of the same mission), over `serve` another MCP session.
    async function secondTransport() {
      if (kind === "proxy") {
        return new StdioClientTransport({
          command: WARDEN,
          args: ["proxy", "--insecure-identity", "--config", config, "--agent", "explorer", "--principal", "erin",
            "--mission", "explore", "--purpose", "try everything"],
          cwd: work,
          stderr: log,
        });
      }
      return new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers } });
    }

    before(async () => {
      work = mkdtempSync(join(tmpdir(), `warden-e2e-ts-everything-${kind}-`));
      log = openSync(join(work, "stdio.log"), "w");
      let transport;
      if (kind === "direct") {
        transport = new StdioClientTransport({ command: EVERYTHING, args: ["stdio"], cwd: work, stderr: log });
      } else {
        config = renderConfig(join(work, "config"));
        if (kind === "serve") {
          const token = `tok-explorer-${randomBytes(12).toString("hex")}`;
          server = await startHttp([WARDEN, "serve", "--insecure-identity", "--config", config], "--listen",
            { WARDEN_TOKEN_EXPLORER: token }, work, "warden serve");
          headers = {
            Authorization: `Bearer ${token}`,
            "X-Warden-Principal": "erin",
            "X-Warden-Mission": "explore",
            "X-Warden-Purpose": "try everything",
          };
        }
        transport = await secondTransport();
      }
      client = new Client({ name: "warden-e2e-ts-everything", version: "0.0.0" });
      await client.connect(transport, { timeout: OP_TIMEOUT_MS });
    });

    after(async () => {
      try { await client?.close(); } catch { /* closing anyway */ }
      await server?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test("prompts: listed, got with and without arguments", async () => {
      const names = (await client.listPrompts()).prompts.map((p) => p.name);
      for (const p of ["simple-prompt", "args-prompt", "resource-prompt"]) {
        assert.ok(names.includes(n(p)), `missing ${n(p)}: ${names.join(", ")}`);
      }
      const simple = await client.getPrompt({ name: n("simple-prompt") });
      assert.ok(simple.messages[0].content.text, JSON.stringify(simple));
      const args = await client.getPrompt({ name: n("args-prompt"), arguments: { city: "Porto" } });
      assert.match(args.messages[0].content.text, /Porto/);
    });

    test("resources: listed, templates listed, static and templated URIs read", async () => {
      const uris = (await client.listResources()).resources.map((r) => r.uri);
      assert.ok(uris.includes(STATIC_DOC), uris.join(", "));
      const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
      assert.ok(templates.includes("demo://resource/dynamic/text/{resourceId}"), templates.join(", "));
      const doc = await client.readResource({ uri: STATIC_DOC });
      assert.ok(doc.contents[0].text.length > 0);
      const dyn = await client.readResource({ uri: "demo://resource/dynamic/text/5" });
      assert.match(dyn.contents[0].text, /5/);
    });

    test("progress: every step of a long operation reaches the client", async () => {
      const heard = [];
      // The SDK handles a notification a microtask after reading it, but a response at once: when
      // the last progress and the result arrive in one read, the SDK has already forgotten the
      // request and reports the progress as an error instead. It reached the client all the same.
      const late = /progress notification for an unknown token: (.*)$/;
      const onerror = client.onerror;
      client.onerror = (e) => {
        const m = late.exec(String(e?.message ?? e));
        if (m) heard.push(JSON.parse(m[1]).params.progress);
        else onerror?.(e);
      };
      const r = await client.callTool(
        { name: n("trigger-long-running-operation"), arguments: { duration: 1, steps: 4 } },
        undefined,
        { timeout: OP_TIMEOUT_MS, onprogress: (p) => heard.push(p.progress) },
      );
      assert.match(texts(r.content), /completed/);
      await new Promise((resolve) => setImmediate(resolve));
      client.onerror = onerror;
      assert.deepEqual(heard, [1, 2, 3, 4]);
    });

    test("cancellation: an aborted call ends, and the next call is answered at once", async () => {
      const abort = new AbortController();
      const long = client.callTool(
        { name: n("trigger-long-running-operation"), arguments: { duration: 20, steps: 2 } },
        undefined,
        { timeout: OP_TIMEOUT_MS, signal: abort.signal },
      );
      setTimeout(() => abort.abort("the user gave up"), 500);
      await assert.rejects(long);
      const started = Date.now();
      const r = await client.callTool({ name: n("echo"), arguments: { message: "after" } });
      assert.equal(texts(r.content), "Echo: after");
      assert.ok(Date.now() - started < 5000, "the next call waited");
    });

    test("tasks: a tool that runs long is called as a task, polled, and its result fetched", async () => {
      assert.ok(client.getServerCapabilities()?.tasks?.requests?.tools?.call, "tasks are not offered");
      const tools = (await client.listTools()).tools;
      const research = tools.find((t) => t.name === n("simulate-research-query"));
      assert.ok(research, tools.map((t) => t.name).join(", "));
      // Directly the tool runs only as a task; through Warden it may run either way.
      assert.equal(research.execution?.taskSupport, kind === "direct" ? "required" : "optional");
      const seen = [];
      let result;
      for await (const m of client.experimental.tasks.callToolStream(
        { name: n("simulate-research-query"), arguments: { topic: "owls" } },
        undefined,
        { timeout: OP_TIMEOUT_MS },
      )) {
        seen.push(m.type);
        if (m.type === "error") throw m.error;
        if (m.type === "result") result = m.result;
      }
      assert.equal(seen[0], "taskCreated", seen.join(", "));
      assert.match(texts(result.content), /Research Report: owls/);
    });

    if (kind !== "direct") {
      test("tasks through Warden: any call as a task, listed, cancelled, and another session's tasks unseen", async () => {
        const tasks = client.experimental.tasks;
        const created = await client.request(
          { method: "tools/call", params: { name: n("echo"), arguments: { message: "as a task" }, task: { ttl: 60000 } } },
          CreateTaskResultSchema,
        );
        const id = created.task.taskId;
        assert.match(id, /^[0-9a-f]{32}$/);
        const echoed = await tasks.getTaskResult(id, CallToolResultSchema);
        assert.equal(texts(echoed.content), "Echo: as a task");
        assert.equal((await tasks.getTask(id)).status, "completed");

        const long = await client.request(
          { method: "tools/call", params: { name: n("trigger-long-running-operation"), arguments: { duration: 20, steps: 2 }, task: {} } },
          CreateTaskResultSchema,
        );
        const longId = long.task.taskId;
        assert.equal((await tasks.getTask(longId)).status, "working");
        const listed = (await tasks.listTasks()).tasks.map((t) => t.taskId);
        assert.ok(listed.includes(id) && listed.includes(longId), listed.join(", "));
        const cancelled = await tasks.cancelTask(longId);
        assert.equal(cancelled.status, "cancelled");
        await assert.rejects(tasks.getTaskResult(longId, CallToolResultSchema));

        // A second session (another connection of the same agent) sees none of these tasks.
        const other = new Client({ name: "warden-e2e-ts-other", version: "0.0.0" });
        await other.connect(await secondTransport(), { timeout: OP_TIMEOUT_MS });
        try {
          assert.deepEqual((await other.experimental.tasks.listTasks()).tasks, []);
          await assert.rejects(other.experimental.tasks.getTask(id), /no task/);
          await assert.rejects(other.experimental.tasks.getTaskResult(id, CallToolResultSchema), /no task/);
        } finally {
          await other.close();
        }
      });
    }
  });
}
