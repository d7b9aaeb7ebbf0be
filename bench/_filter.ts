/**
 * `--filter REGEX` of the bench files: the pattern is matched against the
 * benchmark names (vmem-churn, dma-sg-64k, boot-64g, ...), as mitata's own
 * filter does, and a pattern that matches nothing is an error rather than a
 * quiet run of nothing.
 *
 * @module
 */

import process from "node:process";
import { run } from "mitata";

/** `pattern` as a regular expression (all names when absent); a bad one ends the process with status 2. */
export function benchFilter(pattern: string | undefined): RegExp {
  if (pattern === undefined) return /.*/;
  try {
    return new RegExp(pattern);
  } catch (e) {
    process.stderr.write(`--filter: not a regular expression: ${(e as Error).message}\n`);
    process.exit(2);
  }
}

/**
 * Runs the benchmarks whose names match `filter` (mitata's JSON report,
 * samples included, with `json`) and returns mitata's result; when none
 * matches, says so on standard error and sets exit status 2.
 */
export async function runMatching(
  filter: RegExp,
  json: boolean,
): Promise<Awaited<ReturnType<typeof run>>> {
  const result = await run({ filter, ...(json ? { format: "json" } : {}) });
  if (result.benchmarks.length === 0) {
    process.stderr.write(`--filter ${filter}: no benchmark name matches\n`);
    process.exitCode = 2;
  }
  return result;
}
