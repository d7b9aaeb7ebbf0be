/**
 * The command line of `boot.ts`: flags parsed with `parseArgs` from
 * `node:util`, checked, and turned into {@link BootOptions}. A bad flag or
 * value is a {@link UsageError} with a one-line message; the front end
 * prints it and exits with status 2.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** The machine presets the firmware knows. */
export const PRESETS = ["isa", "pc", "big"] as const;
/** A machine preset name. */
export type PresetName = typeof PRESETS[number];

/** The workloads the kernel can run after boot. */
export const WORKLOADS = ["all", "heap", "pressure", "ids", "dma", "none"] as const;
/** A workload name. */
export type WorkloadName = typeof WORKLOADS[number];

/** The orders uvm_pglistalloc can search physical segments in (`VM_PHYSSEG_STRAT`). */
export const PHYSSEGS = ["bsearch", "bigfirst"] as const;
/** A segment order. */
export type PhysSegName = typeof PHYSSEGS[number];

/** The devices the kernel can attach. */
export const DEVICES = ["isa", "nic", "nvme", "dma30"] as const;
/** A device name. */
export type DeviceName = typeof DEVICES[number];

/** Everything a boot needs to know, with defaults filled in. */
export interface BootOptions {
  /** Machine preset. */
  machine: PresetName;
  /** RAM size in bytes, or undefined for the preset's default. */
  memory?: number;
  /** Workload to run after boot. */
  workload: WorkloadName;
  /** Operations per workload, or undefined for the workload's default. */
  ops?: number;
  /** Seed of the workload's random numbers. */
  seed: number;
  /** Devices to attach. */
  devices: DeviceName[];
  /** Print the summary as one JSON object on standard output. */
  json: boolean;
  /** Print nothing but errors (and the JSON summary when asked). */
  quiet: boolean;
  /** Write the run's vmem operations as a replay trace to this file. */
  recordVmem?: string;
  /** Write the run's uvm_pglistalloc operations as a replay trace to this file. */
  recordPglist?: string;
  /** Write a picture of physical memory and the heap arena to this file. */
  svg?: string;
  /** Let the drivers ignore their DMA tags (a test switch: faults must follow). */
  ignoreTags: boolean;
  /** The order uvm_pglistalloc searches physical segments in. */
  physseg: PhysSegName;
  /** Print the usage text and do nothing else. */
  help: boolean;
}

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
      --svg FILE         draw physical memory and the heap arena
      --ignore-tags      drivers ignore their DMA tags (faults are expected)
      --physseg ORDER    segment order of uvm_pglistalloc: bsearch (by address,
                         default) or bigfirst (x86's: smallest segment first)
  -h, --help             print this text

Exit status: 0 when every check passed, 1 on a leak, a failed check, a DMA
fault or a data mismatch, 2 on a bad command line.
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

/** Parses the arguments of `boot.ts` (without the program name). */
export function parseBootArgs(args: readonly string[]): BootOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
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
        "ignore-tags": { type: "boolean" },
        physseg: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
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
    ignoreTags: v["ignore-tags"] ?? false,
    physseg: oneOf("--physseg", v.physseg ?? "bsearch", PHYSSEGS),
    help: v.help ?? false,
  };
}
