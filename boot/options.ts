/**
 * The command line of `boot.ts`: flags parsed with `parseArgs` from
 * `node:util`, checked, and turned into {@link BootOptions}. A bad flag or
 * value is a {@link UsageError} with a one-line message; the front end
 * prints it and exits with status 2.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { KMEM_POLICIES } from "../mm/kmem.ts";
import { DRIVER_BUGS, type DriverBug } from "../devices/mod.ts";
import {
  type BootOptions,
  type DeviceName,
  DEVICES,
  PHYSSEGS,
  PRESETS,
  VMEM_FLAVORS,
  WORKLOADS,
} from "./boot_options.ts";

/** A bad command line: the message names the flag and the value. */
export class UsageError extends Error {
  /** Creates the error with a one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The text `--help` prints. */
export const USAGE = `usage: deno run boot.ts [flags]

Boots a toy machine, brings up its kernel, runs a workload and prints a summary.

  -m, --machine NAME     machine preset: isa (16 MiB), pc (default), big (64 GiB)
      --memory SIZE      RAM size, e.g. 512M, 2G, 6G (pc only; default 512M)
  -w, --workload NAME    all (default), heap, pressure, ids, dma, none
  -n, --ops N            operations per workload (default: each workload's own)
  -s, --seed N           seed of the workload's random numbers (default 1)
      --devices LIST     devices to attach: all (default), none, or a list of
                         isa, nic, nvme, dma30 separated by commas
      --json             print the summary as JSON on standard output
  -q, --quiet            print no boot log or summary
      --record-vmem FILE     write the run's vmem operations as a replay trace
      --record-pglist FILE   write the run's uvm_pglistalloc operations as a trace
      --svg FILE         draw physical memory and the arenas at each workload's
                         peak, and the heap over the run
      --vmem NAME        heap arenas of illumos's vmem (default) or freebsd's
      --policy NAME      allocation policy of the heap arenas: instantfit
                         (default), bestfit, firstfit, nextfit; with --vmem
                         freebsd, bestfit (default) or firstfit
      --sample N         sample the heap every N arena operations (a series
                         in --json; the plot of --svg)
      --ignore-tags      drivers ignore their DMA tags: the devices must fault
                         every transfer bus_dma would have prevented
      --dma-debug        track every DMA map and report each misuse
      --driver-bugs LIST deliberate driver bugs: skip-sync, early-unload
      --bounce-pages N   pages of the bounce pool taken at boot (default 64)
      --physseg ORDER    segment order of uvm_pglistalloc: bsearch (by address,
                         default) or bigfirst (x86's: smallest segment first)
      --iommu            put every device behind an IOMMU: I/O virtual addresses
                         from a vmem arena per device, translated DMA
  -h, --help             print this text

Exit status: 0 when every check passed, 1 on a leak, a failed check, a DMA
fault (with --ignore-tags: a transfer beyond a device's limits that no fault
caught), a DMA-API violation or a data mismatch, 2 on a bad command line.
Writing a file needs write access to that file only, e.g.
  deno run --allow-write=mem.svg boot.ts --svg mem.svg`;

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
};

/** Parses a size such as `4096`, `512M`, `2G` or `64GiB` into bytes. */
export function parseSize(flag: string, text: string): number {
  const m = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  const bytes = m === null ? NaN : Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new UsageError(`${flag}: not a size: ${JSON.stringify(text)} (try 512M or 2G)`);
  }
  return bytes;
}

function parseCount(flag: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${flag}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

function oneOf<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text)) {
    throw new UsageError(
      `${flag}: unknown value ${JSON.stringify(text)} (one of ${allowed.join(", ")})`,
    );
  }
  return text as T;
}

function fileName(flag: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (text === "" || text.startsWith("-")) {
    throw new UsageError(`${flag}: expected a file name, got ${JSON.stringify(text)}`);
  }
  return text;
}

/** The flags of `boot.ts` as parseArgs takes them. */
const FLAGS = {
  machine: { type: "string", short: "m" },
  memory: { type: "string" },
  workload: { type: "string", short: "w" },
  ops: { type: "string", short: "n" },
  seed: { type: "string", short: "s" },
  devices: { type: "string" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  "record-vmem": { type: "string" },
  "record-pglist": { type: "string" },
  svg: { type: "string" },
  policy: { type: "string" },
  sample: { type: "string" },
  "ignore-tags": { type: "boolean" },
  "dma-debug": { type: "boolean" },
  "driver-bugs": { type: "string" },
  "bounce-pages": { type: "string" },
  iommu: { type: "boolean" },
  vmem: { type: "string" },
  physseg: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Joins a value flag and a following negative number (`-n -5`) into one
 * argument (`--ops=-5`), which parseArgs would otherwise take for a flag;
 * the value is then refused by its own check, naming the flag.
 */
function joinNegatives(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    const name = Object.entries(FLAGS).find(([long, f]) =>
      f.type === "string" && (a === `--${long}` || ("short" in f && a === `-${f.short}`))
    )?.[0];
    if (name !== undefined && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** Parses the arguments of `boot.ts` (without the program name). */
export function parseBootArgs(args: readonly string[]): BootOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegatives(args),
      strict: true,
      allowPositionals: false,
      options: FLAGS,
    });
  } catch (e) {
    // parseArgs' messages are multi-line; keep the first, which names the flag.
    throw new UsageError((e as Error).message.split("\n")[0]!);
  }
  const v = parsed.values;
  const machine = oneOf("--machine", v.machine ?? "pc", PRESETS);
  let memory: number | undefined;
  if (v.memory !== undefined) {
    if (machine !== "pc") {
      throw new UsageError(`--memory: the ${machine} preset has a fixed size; use --machine pc`);
    }
    memory = parseSize("--memory", v.memory);
    if (memory % (1 << 20) !== 0 || memory < 32 * 2 ** 20 || memory > 64 * 2 ** 40) {
      throw new UsageError(
        `--memory: must be whole MiB from 32M to 64T, got ${JSON.stringify(v.memory)}`,
      );
    }
  }
  let devices: DeviceName[];
  const list = v.devices ?? "all";
  if (list === "all") devices = [...DEVICES];
  else if (list === "none") devices = [];
  else {
    devices = [];
    for (const name of list.split(",")) {
      const d = oneOf("--devices", name.trim(), DEVICES);
      if (!devices.includes(d)) devices.push(d);
    }
  }
  const vmem = oneOf("--vmem", v.vmem ?? "illumos", VMEM_FLAVORS);
  const policyFlag = vmem === "illumos" ? "--policy" : `--policy (with --vmem ${vmem})`;
  const policy = v.policy === undefined
    ? undefined
    : oneOf(policyFlag, v.policy, KMEM_POLICIES[vmem]);
  const bugs: DriverBug[] = [];
  if (v["driver-bugs"] !== undefined && v["driver-bugs"] !== "none") {
    for (const name of v["driver-bugs"].split(",")) {
      const b = oneOf("--driver-bugs", name.trim(), DRIVER_BUGS);
      if (!bugs.includes(b)) bugs.push(b);
    }
  }
  return {
    machine,
    memory,
    workload: oneOf("--workload", v.workload ?? "all", WORKLOADS),
    ops: v.ops === undefined ? undefined : parseCount("--ops", v.ops, 1, 10_000_000),
    seed: v.seed === undefined ? 1 : parseCount("--seed", v.seed, 0, 0xffffffff),
    devices,
    json: v.json ?? false,
    quiet: v.quiet ?? false,
    recordVmem: fileName("--record-vmem", v["record-vmem"]),
    recordPglist: fileName("--record-pglist", v["record-pglist"]),
    svg: fileName("--svg", v.svg),
    policy,
    sample: v.sample === undefined ? undefined : parseCount("--sample", v.sample, 1, 10_000_000),
    ignoreTags: v["ignore-tags"] ?? false,
    vmem,
    dmaDebug: v["dma-debug"] ?? false,
    driverBugs: bugs,
    bouncePages: v["bounce-pages"] === undefined
      ? undefined
      : parseCount("--bounce-pages", v["bounce-pages"], 0, 65536),
    physseg: oneOf("--physseg", v.physseg ?? "bsearch", PHYSSEGS),
    iommu: v.iommu ?? false,
    help: v.help ?? false,
  };
}
