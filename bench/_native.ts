/**
 * Native reference timings beside a benchmark run: the `--native DIR`
 * option of the bench files. A reference program is one of the seeds
 * compiled natively whose `--bench NAME` prints `NAME ns_per_op=N ops=M`.
 * When DIR holds it, each workload the run timed is run there as well,
 * after the TypeScript run, and the ratio TS/native is printed; when DIR
 * does not hold it, one line says so and nothing else happens.
 *
 *     deno run -A bench/vmem.ts --native DIR
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** The `parseArgs` option of `--native DIR`, to spread into a bench file's options. */
export const nativeOption = { native: { type: "string" } } as const;

/** What `mitata`'s `run()` hands back that the ratios need. */
export interface MitataRun {
  /** One entry per benchmark, its first run named and timed (average ns per iteration). */
  benchmarks: { runs: { name: string; stats?: { avg: number } }[] }[];
}

/** Average ns per iteration of each benchmark of a mitata run, by name. */
export function timesOf(result: MitataRun): Map<string, number> {
  const times = new Map<string, number>();
  for (const b of result.benchmarks) {
    for (const r of b.runs) if (r.stats !== undefined) times.set(r.name, r.stats.avg);
  }
  return times;
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
 * For each of `names` timed in this run (`times`, ns per operation), runs
 * `dir/program --bench NAME` (or a {@link NativeWorkload}'s name and
 * arguments) and prints TS ns/op, native ns/op and their
 * ratio through `print`. Without `dir` does nothing; when `dir` holds no
 * `program`, prints one line saying the comparison is skipped.
 */
export function printNativeRatios(
  dir: string | undefined,
  program: string,
  names: readonly (string | NativeWorkload)[],
  times: ReadonlyMap<string, number>,
  print: (line: string) => void,
): void {
  if (dir === undefined) return;
  const path = join(dir, program);
  if (!existsSync(path)) {
    print(`native: no ${program} in ${dir}; comparison skipped`);
    return;
  }
  print(`native: ${path}`);
  print(`${"workload".padEnd(24)} ${"TS ns/op".padStart(12)} ${"native".padStart(12)}  TS/native`);
  for (const w of names) {
    const { name, bench, args } = typeof w === "string" ? { name: w, bench: w, args: [] } : w;
    const ts = times.get(name);
    if (ts === undefined) continue;
    const native = nativeNsPerOp(path, bench, args);
    const ratio = native === null ? "failed" : (ts / native).toFixed(2);
    const nat = native === null ? "-" : native.toFixed(1);
    print(`${name.padEnd(24)} ${ts.toFixed(1).padStart(12)} ${nat.padStart(12)}  ${ratio}`);
  }
}
