/**
 * The command `boot.ts`: parse the flags, check that every output file can
 * be written, run the kernel (boot/run.ts), print the summary, write the
 * files, and return the exit status (0 clean, 1 a leak or a failed check, 2
 * a bad command line or an output that cannot be written). The only part
 * of the kernel's front end that touches the process and the file system.
 *
 * @module
 */

import process from "node:process";
import { parseBootArgs, USAGE, UsageError } from "./options.ts";
import type { BootOptions } from "./boot_options.ts";
import { formatSummary, run, runJson } from "./run.ts";
import { checkOutputs, OutputError, writeOutput } from "../mm/cli_files.ts";

/** Runs `boot.ts` with `args`; returns the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  let options: BootOptions;
  try {
    options = parseBootArgs(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`boot.ts: ${e.message}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE + "\n");
    return 0;
  }
  const outputs: [string | undefined, () => string | undefined][] = [
    [options.recordVmem, () => r.vmemText],
    [options.recordPglist, () => r.pglistText],
    [options.svg, () => r.svg],
  ];
  try {
    await checkOutputs(outputs.flatMap(([f]) => f === undefined ? [] : [f]));
  } catch (e) {
    if (!(e instanceof OutputError)) throw e;
    process.stderr.write(`boot.ts: ${e.message}\n`);
    return 2;
  }
  const human = !options.quiet && !options.json;
  const log = human ? (line: string) => process.stdout.write(line + "\n") : () => {};
  const r = await run(options, log);
  try {
    for (const [file, text] of outputs) if (file !== undefined) writeOutput(file, text()!);
  } catch (e) {
    if (!(e instanceof OutputError)) throw e;
    process.stderr.write(`boot.ts: ${e.message}\n`);
    return 2;
  }
  if (options.json) {
    process.stdout.write(JSON.stringify(runJson(r)) + "\n");
  } else if (human) {
    for (const line of formatSummary(r)) process.stdout.write(line + "\n");
  } else {
    for (const p of r.problems) process.stderr.write(`boot.ts: ${p}\n`);
  }
  return r.status;
}
