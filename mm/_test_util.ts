/**
 * What the memory-management tests share: the code a refused call throws,
 * and golden traces replayed against their expected answers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { KernelError } from "./errors.ts";
import { type Replayer, replayText } from "./replayer.ts";
import { VMEM_ALLOC, VMEM_FREE, VMEM_SPAN } from "./vmem.ts";
import { type FreeBSDImportFn, type FreeBSDReleaseFn, M_NOWAIT, M_WAITOK } from "./vmem_freebsd.ts";

/** The code of the KernelError `fn` throws; fails the test when it throws nothing or something else. */
export function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KernelError, `not a KernelError: ${e}`);
    return e.code;
  }
  assert.fail("no error thrown");
}

/** A segment as an arena's walk reports it (either flavor): type, start, size. */
export type Seg = [string, number, number];

/** Every segment `walk(mask)` of `arena` reports (spans, allocated and free by default), in order. */
export function segsOf(
  arena: { walk(mask: number, fn: (start: number, size: number, type: string) => void): void },
  mask?: number,
): Seg[] {
  const out: Seg[] = [];
  arena.walk(mask ?? (VMEM_ALLOC | VMEM_FREE | VMEM_SPAN), (start, size, type) => {
    out.push([type, start, size]);
  });
  return out;
}

/** The code of `e` when it is a KernelError, else `e` as a string (for `assert.throws` predicates). */
export function errorCode(e: unknown): string {
  return e instanceof KernelError ? e.code : String(e);
}

/**
 * Checks that `fn` is refused with code `want` and that it changed nothing:
 * `state` of each of `objs` is as before, and each passes its check().
 */
export function refusedUnchanged<T extends { check(): void }>(
  want: string,
  fn: () => unknown,
  state: (o: T) => unknown,
  objs: readonly T[],
): void {
  const before = objs.map(state);
  assert.equal(refusal(fn), want);
  assert.deepEqual(objs.map(state), before);
  for (const o of objs) o.check();
}

/** An output line with an error's message left out: error lines compare by code alone. */
export function byCode(line: string): string {
  const m = /^\{"error":"([^"]*)"/.exec(line);
  return m === null ? line : `{"error":"${m[1]}"}`;
}

/** The output lines of `text` replayed through `replayer`, as mm/replay.ts prints them. */
export function replayLines(text: string, replayer: Replayer): string[] {
  const out: string[] = [];
  replayText(text, replayer, (line) => out.push(line));
  return out;
}

/** Asserts that `got` are the lines of `want`, error lines compared by code. */
export function assertSameLines(
  got: readonly string[],
  want: readonly string[],
  name: string,
): void {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    assert.equal(
      byCode(got[i] ?? "(none)"),
      byCode(want[i] ?? "(none)"),
      `${name}: output line ${i + 1}`,
    );
  }
}

/**
 * Replays every trace of `testdata/golden/<kind>/` (at least `least` of
 * them) through a fresh replayer from `make`, and asserts each gives the
 * lines of its `.expected` file.
 */
export function replayGolden(kind: string, least: number, make: () => Replayer): void {
  const dir = fileURLToPath(new URL(`../testdata/golden/${kind}/`, import.meta.url));
  const traces = readdirSync(dir).filter((f) => f.endsWith(".jsonl")).sort();
  assert.ok(traces.length >= least, `golden ${kind} traces found in ${dir}: ${traces.length}`);
  for (const t of traces) {
    const want = readFileSync(dir + t.replace(/\.jsonl$/, ".expected"), "utf8").split("\n");
    if (want[want.length - 1] === "") want.pop();
    assertSameLines(replayLines(readFileSync(dir + t, "utf8"), make()), want, `${kind}/${t}`);
  }
}

/**
 * Custom import and release functions for a FreeBSD arena (they allocate
 * from and free to its source without sleeping) and the number of spans they
 * hold out of the source: a test sees what the arena imported and gave back
 * through functions it cannot undo.
 */
export function countedImports(): {
  importFn: FreeBSDImportFn;
  releaseFn: FreeBSDReleaseFn;
  readonly live: number;
} {
  let live = 0;
  return {
    importFn: (src, size, flags) => {
      const addr = src.alloc(size, (flags | M_NOWAIT) & ~M_WAITOK);
      if (addr >= 0) live++;
      return addr;
    },
    releaseFn: (src, addr, size) => {
      live--;
      src.free(addr, size);
    },
    get live() {
      return live;
    },
  };
}
