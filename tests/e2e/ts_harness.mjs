// Helpers shared by the TypeScript end-to-end tests: free ports, servers started in their own
// process group and stopped with it.

import { spawn } from "node:child_process";
import { readFileSync, openSync, closeSync } from "node:fs";
import { join } from "node:path";
import net from "node:net";

export const OP_TIMEOUT_MS = 1000 * Number(process.env.WARDEN_E2E_TIMEOUT ?? "30");

export function freePort() {
  return new Promise((res, rej) => {
    const srv = net.createServer();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

export async function waitListening(port, child, logFile, what) {
  const deadline = Date.now() + OP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`${what} exited with ${child.exitCode}:\n${readFileSync(logFile, "utf8").slice(-3000)}`);
    }
    const ok = await new Promise((res) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => { s.destroy(); res(true); });
      s.once("error", () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not listen on ${port}:\n${readFileSync(logFile, "utf8").slice(-3000)}`);
}

/** Start a server in its own process group; returns {url, stop, log}. */
export async function startHttp(argv, listenFlag, env, work, what) {
  const port = await freePort();
  const log = join(work, `${what.replaceAll(" ", "-")}-${port}.log`);
  const fd = openSync(log, "w");
  const args = [...argv.slice(1), listenFlag, `127.0.0.1:${port}`];
  const child = spawn(argv[0], args, {
    cwd: work, env: { ...process.env, ...env }, stdio: ["ignore", fd, fd], detached: true,
  });
  closeSync(fd);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    try { process.kill(-child.pid, "SIGTERM"); } catch { /* already gone */ }
    const t = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }, 5000);
    await gone;
    clearTimeout(t);
  };
  try {
    await waitListening(port, child, log, what);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `http://127.0.0.1:${port}/mcp`, stop, log };
}

