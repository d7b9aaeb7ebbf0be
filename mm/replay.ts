/**
 * Replays an allocation trace (JSON Lines, see spec/replay.md) through one of
 * the kernel's allocators and prints one JSON line per operation.
 *
 *     deno run -R mm/replay.ts vmem   FILE     # FILE may be - for standard input
 *     deno run -R mm/replay.ts pglist FILE
 *     bun mm/replay.ts vmem FILE
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { KernelError } from "./errors.ts";
import { VmemReplayer } from "./replay_vmem.ts";
import { PglistReplayer } from "./replay_pglist.ts";

/** One allocator driven by trace operations. */
export interface Replayer {
  /**
   * Carries out one operation and returns the output object (its keys in the
   * order spec/replay.md gives). A refused operation throws a
   * {@link KernelError} and leaves the allocator exactly as it was.
   */
  apply(op: Record<string, unknown>): unknown;
}

/** The replayers by trace kind. */
export const REPLAYERS: Record<string, () => Replayer> = {
  vmem: () => new VmemReplayer(),
  pglist: () => new PglistReplayer(),
};

/**
 * Replays the trace `text` through `replayer`, calling `emit` with each
 * output line (without newline). Blank and `#` lines produce nothing.
 */
export function replayText(text: string, replayer: Replayer, emit: (line: string) => void): void {
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    emit(replayLine(line, replayer));
  }
}

/** Replays one non-blank trace line and returns its output line. */
export function replayLine(line: string, replayer: Replayer): string {
  let op: unknown;
  try {
    op = JSON.parse(line);
  } catch (e) {
    return errorLine("BADJSON", `not JSON: ${(e as Error).message}`);
  }
  if (typeof op !== "object" || op === null || Array.isArray(op)) {
    return errorLine("BADOP", "an operation must be a JSON object");
  }
  try {
    return JSON.stringify(replayer.apply(op as Record<string, unknown>));
  } catch (e) {
    if (e instanceof KernelError) return errorLine(e.code, e.message);
    throw e;
  }
}

function errorLine(code: string, message: string): string {
  return JSON.stringify({ error: code, message });
}

function main(args: string[]): number {
  const [kind, file] = args;
  const make = kind === undefined ? undefined : REPLAYERS[kind];
  if (make === undefined || file === undefined || args.length !== 2) {
    process.stderr.write(
      "usage: replay.ts vmem|pglist FILE   (FILE may be - for standard input)\n",
    );
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    process.stderr.write(`replay: cannot read ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  const out: string[] = [];
  replayText(text, make(), (line) => out.push(line));
  out.push("");
  process.stdout.write(out.join("\n"));
  return 0;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
