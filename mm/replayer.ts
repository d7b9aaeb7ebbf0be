/**
 * Allocation traces (JSON Lines, docs/replay.md) replayed through the kernel's
 * allocators: the library side of the `mm/replay.ts` command. A trace kind
 * names a {@link Replayer}; {@link replayText} feeds it a trace and hands
 * back one output line per operation.
 *
 * @module
 */

import { KernelError } from "./errors.ts";
import { VmemReplayer } from "./replay_vmem.ts";
import { PglistReplayer } from "./replay_pglist.ts";
import { VmemFreeBSDReplayer } from "./replay_vmem_freebsd.ts";

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
  "vmem-freebsd": () => new VmemFreeBSDReplayer(),
  "pglist-bigfirst": () => new PglistReplayer({ physseg: "bigfirst" }),
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
