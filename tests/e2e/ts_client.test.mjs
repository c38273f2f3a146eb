// The official TypeScript MCP SDK as the agent, through Warden in front of the Acme MCP server:
// tools/list, an allowed call and a denied call, over stdio (`warden proxy`) and streamable
// HTTP (`warden serve`). Run with `node --test` from tests/e2e.
//
// WARDEN_E2E_TARGET=direct talks to acme-mcp itself (stdio and `--http`), with no Warden: the
// Warden-specific checks are skipped.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, cpSync, readFileSync, writeFileSync, rmSync, openSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

import { OP_TIMEOUT_MS, startHttp } from "./ts_harness.mjs";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const E2E = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(E2E, "..", "..");
const WARDEN = process.env.WARDEN_BIN ?? join(REPO, "target", "debug", "warden");
const ACME_MCP = process.env.ACME_MCP_BIN ?? join(REPO, "target", "debug", "acme-mcp");
const TARGET = process.env.WARDEN_E2E_TARGET ?? "warden";
const DIRECT = TARGET === "direct";
const ACME_SERVERS = ["forum", "logs", "hr", "files", "acl", "web", "mail"];

const AGENT = "forum-helper";
const PRINCIPAL = "alice";
const MISSION = "answer-forum-question";
const PURPOSE = "Help me answer Bob's question in T-1042";

// ---- config --------------------------------------------------------------------------------

/** Remove every `[servers]` / `[servers.*]` table (same rule as harness.py strip_servers). */
function stripServers(text) {
  const out = [];
  let skipping = false;
  for (const line of text.split(/(?<=\n)/)) {
    const m = /^\s*\[\[?\s*([A-Za-z0-9_."-]+)/.exec(line);
    if (m) {
      const name = m[1].replaceAll('"', "");
      skipping = name === "servers" || name.startsWith("servers.");
    }
    if (!skipping) out.push(line);
  }
  return out.join("");
}

function renderAcmeConfig(dir) {
  cpSync(join(REPO, "examples", "acme"), dir, { recursive: true });
  const cfg = join(dir, "warden.toml");
  let text = stripServers(readFileSync(cfg, "utf8"));
  text += "\n# Added by tests/e2e/ts_client.test.mjs\n";
  for (const s of ACME_SERVERS) {
    text += `\n[servers.${s}]\ncommand = ${JSON.stringify(ACME_MCP)}\nargs = ["--server", "${s}"]\n`;
  }
  writeFileSync(cfg, text);
  return cfg;
}

// ---- clients -------------------------------------------------------------------------------

async function connect(transport) {
  const client = new Client({ name: "warden-e2e-ts", version: "0.0.0" });
  await client.connect(transport, { timeout: OP_TIMEOUT_MS });
  return client;
}

async function toolNames(client) {
  const names = new Set();
  let cursor;
  do {
    const r = await client.listTools(cursor ? { cursor } : undefined, { timeout: OP_TIMEOUT_MS });
    r.tools.forEach((t) => names.add(t.name));
    cursor = r.nextCursor;
  } while (cursor);
  return names;
}

async function call(client, name, args) {
  const r = await client.callTool({ name, arguments: args }, undefined, { timeout: OP_TIMEOUT_MS });
  const text = (r.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
  return { isError: Boolean(r.isError), text };
}

// ---- the tests -----------------------------------------------------------------------------

function gatewayAvailable() {
  if (!existsSync(WARDEN)) return [false, `${WARDEN} does not exist`];
  const r = spawnSync(WARDEN, ["proxy", "--help"], { encoding: "utf8", timeout: 20000 });
  return [r.status === 0, `${r.stdout ?? ""}${r.stderr ?? ""}`.trim()];
}

for (const kind of ["stdio", "http"]) {
  describe(`TypeScript SDK over ${kind} (${TARGET})`, () => {
    let work;
    let server; // http only
    let client;
    let stdioLog;
    const tokens = {
      WARDEN_TOKEN_FORUM_HELPER: `tok-fh-${randomBytes(12).toString("hex")}`,
      WARDEN_TOKEN_HR_ASSISTANT: `tok-hr-${randomBytes(12).toString("hex")}`,
      WARDEN_TOKEN_OPS_BOT: `tok-ops-${randomBytes(12).toString("hex")}`,
      WARDEN_TOKEN_EXEC_ASSISTANT: `tok-ex-${randomBytes(12).toString("hex")}`,
    };

    before(async () => {
      work = mkdtempSync(join(tmpdir(), `warden-e2e-ts-${kind}-`));
      if (!DIRECT) {
        const [ok, text] = gatewayAvailable();
        if (!ok) throw new Error(`the Warden gateway is not available: \`warden proxy --help\` said:\n${text}`);
      }
      const config = DIRECT ? null : renderAcmeConfig(join(work, "acme"));
      let transport;
      if (kind === "stdio") {
        stdioLog = join(work, "stdio.log");
        const fd = openSync(stdioLog, "w");
        transport = DIRECT
          ? new StdioClientTransport({ command: ACME_MCP, args: [], cwd: work, stderr: fd })
          : new StdioClientTransport({
              command: WARDEN,
              args: ["proxy", "--insecure-identity", "--config", config, "--agent", AGENT, "--principal", PRINCIPAL,
                "--mission", MISSION, "--purpose", PURPOSE],
              cwd: work,
              stderr: fd,
            });
      } else {
        server = DIRECT
          ? await startHttp([ACME_MCP], "--http", {}, work, "acme-mcp")
          : await startHttp([WARDEN, "serve", "--insecure-identity", "--config", config], "--listen", tokens, work, "warden serve");
        const headers = DIRECT ? {} : {
          Authorization: `Bearer ${tokens.WARDEN_TOKEN_FORUM_HELPER}`,
          "X-Warden-Principal": PRINCIPAL,
          "X-Warden-Mission": MISSION,
          "X-Warden-Purpose": PURPOSE,
        };
        transport = new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers } });
      }
      try {
        client = await connect(transport);
      } catch (e) {
        const log = kind === "stdio" ? stdioLog : server?.log;
        const tail = log && existsSync(log) ? readFileSync(log, "utf8").slice(-3000) : "";
        throw new Error(`could not connect over ${kind}: ${e?.message ?? e}\n--- server stderr ---\n${tail}`);
      }
    });

    after(async () => {
      try { await client?.close(); } catch { /* closing anyway */ }
      await server?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test("tools/list shows what the agent may use", async () => {
      const names = await toolNames(client);
      for (const t of ["forum.read_thread", "forum.post_reply", "logs.query_logs", "files.read_file"]) {
        assert.ok(names.has(t), `missing ${t}: ${[...names].join(", ")}`);
      }
      const outside = ["hr.search_employees", "acl.grant_access", "mail.send_email", "files.write_file", "web.fetch"];
      if (DIRECT) {
        outside.forEach((t) => assert.ok(names.has(t), `acme-mcp should serve ${t}`));
      } else {
        const seen = outside.filter((t) => names.has(t));
        assert.deepEqual(seen, [], `forum-helper must not see tools outside its ceiling: ${seen.join(", ")}`);
      }
    });

    test("an allowed call returns the upstream's real result", async () => {
      const r = await call(client, "forum.read_thread", { channel: "eng-help", thread_id: "T-1042" });
      assert.equal(r.isError, false, `read_thread failed: ${r.text}`);
      assert.match(r.text, /T-1042/);
      assert.match(r.text, /bob/);
    });

    test("a denied call is an isError result with Warden's reason", async (t) => {
      if (DIRECT) return t.skip("no Warden under the direct target");
      // alice is not cleared for secrets, so forum-helper may not read a .env for her.
      const r = await call(client, "files.read_file", { path: "services/billing/.env" });
      assert.equal(r.isError, true, `expected a deny, got: ${r.text}`);
      assert.match(r.text, /Warden denied `files\.read_file`/);
      assert.doesNotMatch(r.text, /STRIPE_SECRET_KEY|sk_live/);
    });

    test("a tool outside the ceiling is denied if called anyway", async (t) => {
      if (DIRECT) return t.skip("no Warden under the direct target");
      const r = await call(client, "hr.search_employees", { query: "*", fields: ["name"] });
      assert.equal(r.isError, true, `expected a deny, got: ${r.text}`);
      assert.match(r.text, /Warden denied `hr\.search_employees`/);
    });
  });
}
