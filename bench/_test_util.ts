/**
 * What the bench tests share: running a bench file as a user would.
 *
 * @module
 */

import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import process from "node:process";

const root = new URL("..", import.meta.url).pathname;

/** Runs bench file `file` (relative to the repository) with `args`, under the runtime running the test. */
export function benchCmd(file: string, args: readonly string[]): SpawnSyncReturns<string> {
  const argv = "Deno" in globalThis ? ["run", "-A", file, ...args] : [file, ...args];
  return spawnSync(process.execPath, argv, {
    cwd: root,
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 1 << 28,
  });
}
