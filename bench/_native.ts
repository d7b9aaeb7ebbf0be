/**
 * Native reference timings beside a benchmark run: the `--native DIR`
 * option of the bench files. A reference program is one of the seeds
 * compiled natively whose `--bench NAME` prints `NAME ns_per_op=N ops=M`.
 * When DIR holds it, each workload is run there twice: just before mitata
 * times the same workload here, and again after the whole run; the faster of
 * the two is the native time. A machine whose speed drifts during a run (a
 * shared host, a CPU changing its clock) then meets both sides at about the
 * same moment, and the ratio TS/native is printed on mitata's mean and
 * median. When DIR does not hold the program, one line says so and nothing
 * else happens.
 *
 *     deno run -A bench/vmem.ts --native DIR
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { bench } from "mitata";

/** The `parseArgs` option of `--native DIR`, to spread into a bench file's options. */
export const nativeOption = { native: { type: "string" } } as const;

/** What `mitata`'s `run()` hands back that the ratios need. */
export interface MitataRun {
  /** One entry per benchmark, its first run named and timed (ns per iteration). */
  benchmarks: { runs: { name: string; stats?: { avg: number; p50: number } }[] }[];
}

/**
 * A workload of this run that the reference knows under another name, or
 * needs more arguments for (`--policy firstfit`).
 */
export interface NativeWorkload {
  /** The benchmark's name in this run. */
  name: string;
  /** The reference's name for it (`--bench NAME`). */
  bench: string;
  /** More arguments for the reference. */
  args: readonly string[];
}

/**
 * ns per operation of workload `name` as `program --bench name ...args`
 * reports it, or null when the program fails or prints no such figure.
 */
export function nativeNsPerOp(
  program: string,
  name: string,
  args?: readonly string[],
): number | null {
  try {
    const argv = ["--bench", name, ...(args ?? [])];
    const out = execFileSync(program, argv, { encoding: "utf8" });
    const m = /ns_per_op=([0-9.]+)/.exec(out);
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/**
 * One reference program and the workloads it times beside this run. Without
 * a directory, or with one that lacks the program, {@link run} does nothing
 * and {@link report} says at most that the comparison was skipped.
 */
export class NativeComparison {
  /** The reference's path, or null when there is nothing to run. */
  readonly path: string | null;
  readonly #dir: string | undefined;
  readonly #program: string;
  readonly #workloads: Map<string, NativeWorkload>;
  /** Per workload, the fastest native time so far (ns per operation), NaN after a failed run. */
  readonly #ns = new Map<string, number>();

  /**
   * `dir` as `--native` gave it (undefined: no comparison), `program` the
   * reference's file name in it, `workloads` the benchmarks it has a
   * workload for (a name alone is the reference's name too).
   */
  constructor(
    dir: string | undefined,
    program: string,
    workloads: readonly (string | NativeWorkload)[],
  ) {
    this.#dir = dir;
    this.#program = program;
    const path = dir === undefined ? null : join(dir, program);
    this.path = path !== null && existsSync(path) ? path : null;
    this.#workloads = new Map(
      workloads.map((w) =>
        typeof w === "string" ? [w, { name: w, bench: w, args: [] }] : [w.name, w]
      ),
    );
  }

  /** Times benchmark `name`'s workload on the reference now, when it has one. */
  run(name: string): void {
    const w = this.#workloads.get(name);
    if (this.path === null || w === undefined) return;
    const ns = nativeNsPerOp(this.path, w.bench, w.args) ?? NaN;
    const best = this.#ns.get(name);
    this.#ns.set(name, best === undefined || Number.isNaN(ns) ? ns : Math.min(best, ns));
  }

  /**
   * Runs each workload that mitata timed in `result` on the reference once
   * more, then prints, through `print`, a line per workload: mitata's mean
   * and median, the native time, and the ratio of each to it.
   */
  report(result: MitataRun, print: (line: string) => void): void {
    if (this.#dir === undefined) return;
    if (this.path === null) {
      print(`native: no ${this.#program} in ${this.#dir}; comparison skipped`);
      return;
    }
    const timed = result.benchmarks.flatMap((b) => b.runs)
      .filter((r) => r.stats !== undefined && this.#workloads.has(r.name));
    if (timed.length === 0) return;
    for (const r of timed) this.run(r.name);
    print(`native: ${this.path} (the faster of a run before each benchmark and one after all)`);
    print(
      `${"workload".padEnd(24)} ${"TS mean".padStart(9)} ${"median".padStart(9)} ${
        "native".padStart(9)
      }  ${"mean/native".padStart(11)}  ${"median/native".padStart(13)}`,
    );
    for (const r of timed) {
      const { avg, p50 } = r.stats!;
      const ns = this.#ns.get(r.name) ?? NaN;
      const ok = !Number.isNaN(ns);
      print(
        `${r.name.padEnd(24)} ${avg.toFixed(1).padStart(9)} ${p50.toFixed(1).padStart(9)} ${
          (ok ? ns.toFixed(1) : "-").padStart(9)
        }  ${(ok ? (avg / ns).toFixed(2) : "failed").padStart(11)}  ${
          (ok ? (p50 / ns).toFixed(2) : "failed").padStart(13)
        }`,
      );
    }
  }
}

/**
 * Registers mitata benchmark `name` timing `op`, with `native`'s reference
 * run on the same workload just before mitata times it.
 */
export function benchBeside(native: NativeComparison, name: string, op: () => void): void {
  bench(name, function* () {
    native.run(name);
    yield op;
  });
}
