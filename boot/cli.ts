/**
 * The front end of `boot.ts`: parse the flags, build the machine, boot the
 * kernel, run the workload, check everything, print the summary and return
 * the exit status (0 clean, 1 a leak or a failed check, 2 a bad command line).
 *
 * @module
 */

import process from "node:process";
import { writeFileSync } from "node:fs";
import { createMachine } from "../machine/mod.ts";
import { Kernel, type KernelSummary, PAGE_SIZE } from "./kernel.ts";
import { type BootOptions, parseBootArgs, USAGE, UsageError } from "./options.ts";
import { DEFAULT_OPS, WORKLOAD_TABLE, type WorkloadReport } from "./workloads.ts";
import { PglistTrace, VmemTrace } from "./trace.ts";
import { renderSvg } from "./svg.ts";
import { OWNER_CACHE, OWNER_DMA, OWNER_KMEM } from "../mm/kmem.ts";
import { PG_PGLIST } from "../mm/physseg.ts";
import { DEVICE_TABLE } from "../devices/mod.ts";

/** Everything one run produced. */
export interface RunResult {
  /** Exit status. */
  status: number;
  /** The kernel after the run. */
  kernel: Kernel;
  /** The kernel's summary. */
  summary: KernelSummary;
  /** Workload reports. */
  workloads: WorkloadReport[];
  /** Problems found: leaks, failed checks, workload errors, DMA faults, data mismatches. */
  problems: string[];
  /** Milliseconds from power-on to a ready kernel. */
  bootMs: number;
  /** The vmem trace, when recorded. */
  vmemTrace?: VmemTrace;
  /** The pglist trace, when recorded. */
  pglistTrace?: PglistTrace;
}

/** Boots and runs as `options` say; prints nothing (see {@link main}). */
export async function run(
  options: BootOptions,
  log: (line: string) => void = () => {},
  onPeak: ((k: Kernel, workload: string) => void) | null = null,
): Promise<RunResult> {
  const vmemTrace = options.recordVmem !== undefined ? new VmemTrace() : undefined;
  const pglistTrace = options.recordPglist !== undefined ? new PglistTrace() : undefined;
  const t0 = performance.now();
  const machine = createMachine({ preset: options.machine, ramSize: options.memory });
  for (const name of options.devices) DEVICE_TABLE[name].attachModel(machine);
  const kernel = new Kernel(machine, {
    log,
    vmemTrace,
    pglistTrace,
    ignoreTags: options.ignoreTags,
    physseg: options.physseg,
  });
  const bootMs = performance.now() - t0;
  kernel.onPeak = onPeak;
  // The state right after boot is the first peak: a run without a workload
  // is drawn as it booted, the others at their own peak.
  kernel.peak("boot");
  log(`boot: kernel ready in ${bootMs.toFixed(1)} ms`);

  const names = options.workload === "all"
    ? Object.keys(WORKLOAD_TABLE)
    : options.workload === "none"
    ? []
    : [options.workload];
  const workloads: WorkloadReport[] = [];
  const problems: string[] = [...kernel.attachErrors];
  for (const name of names) {
    const workload = WORKLOAD_TABLE[name];
    if (workload === undefined) {
      problems.push(`workload ${name} is not available on this kernel`);
      continue;
    }
    const ops = options.ops ?? DEFAULT_OPS[name]!;
    log(`workload ${name}: ${ops} operations, seed ${options.seed}`);
    const report = await workload(kernel, options.seed, ops);
    workloads.push(report);
    const counts = Object.entries(report.counts).map(([k, v]) => `${k} ${v}`).join(", ");
    log(`workload ${name}: done in ${report.ms.toFixed(1)} ms: ${counts}`);
    for (const e of report.errors) problems.push(`${name}: ${e}`);
    try {
      kernel.check();
    } catch (e) {
      problems.push(`check after ${name}: ${(e as Error).message}`);
    }
  }
  // Faults are never silent: every fault a device's DMA port recorded, and
  // every mismatch a driver found, is a problem.
  for (const d of machine.devices) {
    const f = d.port.lastFault;
    if (d.port.faults > 0) {
      problems.push(
        `${d.name}: ${d.port.faults} DMA faults (last: ${f!.kind} ${f!.op} at 0x${
          f!.addr.toString(16)
        }: ${f!.reason})`,
      );
    }
  }
  for (const d of kernel.drivers) {
    const s = d.stats();
    if (s.mismatches > 0) problems.push(`${d.name}: ${s.mismatches} transfers with wrong data`);
    if (s.errors > 0) problems.push(`${d.name}: ${s.errors} device or driver errors`);
  }
  kernel.reap();
  kernel.traceState();
  try {
    kernel.check();
  } catch (e) {
    problems.push(`final check: ${(e as Error).message}`);
  }
  const summary = kernel.summary();
  const l = summary.leaks = kernel.shutdown();
  try {
    kernel.check();
  } catch (e) {
    problems.push(`check after shutdown: ${(e as Error).message}`);
  }
  if (l.pages !== 0) problems.push(`leak: ${l.pages} pages not returned`);
  if (l.heapBytes !== 0) problems.push(`leak: ${l.heapBytes} heap bytes still allocated`);
  if (l.kvaBytes !== 0) {
    problems.push(`leak: ${l.kvaBytes} bytes of kernel virtual space still allocated`);
  }
  if (l.ids !== 0) problems.push(`leak: ${l.ids} process IDs still allocated`);
  if (l.pageLists !== 0) problems.push(`leak: ${l.pageLists} page lists not freed`);
  return {
    status: problems.length === 0 ? 0 : 1,
    kernel,
    summary,
    workloads,
    problems,
    bootMs,
    vmemTrace,
    pglistTrace,
  };
}

/** The summary as the lines a person reads. */
export function formatSummary(r: RunResult): string[] {
  const s = r.summary;
  const out: string[] = [];
  const kib = (pages: number) => `${((pages * PAGE_SIZE) / 2 ** 20).toFixed(2)} MiB`;
  out.push("summary");
  out.push(
    `  RAM          ${s.machine.preset}: ${+(s.machine.ramBytes / 2 ** 20).toFixed(2)} MiB, ` +
      `${s.machine.pages} pages managed, ${
        (s.machine.hostBytesTouched / 2 ** 20).toFixed(1)
      } MiB touched on the host`,
  );
  out.push(
    `  free pages   ${s.freePages} (${kib(s.freePages)}): ` +
      s.freelists.map((f) => `${f.name} ${f.free}`).join(", "),
  );
  out.push("  arenas at rest (quantum caches keep their slabs until shutdown):");
  for (const a of s.arenas) {
    out.push(
      `  arena ${a.name.padEnd(8)} in use ${String(a.inuse).padStart(10)}  free ${
        String(a.free).padStart(14)
      }` +
        `  imported ${String(a.imported).padStart(10)}`,
    );
  }
  const pd = s.pagedaemon;
  out.push(
    `  pagedaemon   ${pd.runs} runs, ${pd.reclaimed} pages reclaimed, ${pd.waits} waits, ` +
      `${pd.wakeups} wakeups, ${pd.cached} pages cached`,
  );
  out.push(
    `  heap         ${s.heap.allocs} allocs, ${s.heap.frees} frees, ${s.heap.pages} pages backing it, ` +
      `${s.heap.pageShortages} page shortages`,
  );
  for (const d of s.devices) {
    out.push(
      `  device ${d.name.padEnd(6)} transfers ${d.transfers}, bytes ${d.bytes}, ` +
        `bounced bytes ${d.bouncedBytes}, faults ${d.faults}` +
        (d.mismatches + d.errors > 0 ? `, mismatches ${d.mismatches}, errors ${d.errors}` : ""),
    );
  }
  if (s.devices.length > 0) {
    const b = s.busDma;
    out.push(
      `  bus_dma      ${b.loads} loads, ${b.segments} segments, ${b.bouncedBytes} bytes copied ` +
        `through bounce pages, ${b.efbig} EFBIG, ${b.bounceExhausted} bounce shortages`,
    );
  }
  const l = s.leaks;
  const leaked = l.pages + l.heapBytes + l.kvaBytes + l.ids + l.pageLists;
  out.push(
    `  leaks        ${
      leaked === 0 ? "0" : "YES"
    } after shutdown: pages ${l.pages}, heap bytes ${l.heapBytes}, ` +
      `kva bytes ${l.kvaBytes}, ids ${l.ids}, page lists ${l.pageLists}`,
  );
  for (const p of r.problems) out.push(`  PROBLEM      ${p}`);
  out.push(r.status === 0 ? "ok" : `FAILED (${r.problems.length} problems)`);
  return out;
}

/** Page states drawn in the SVG, by index. */
const PAGE_STYLES = [
  { name: "not RAM", color: "#ffffff" },
  { name: "free", color: "#9fd39a" },
  { name: "kernel heap", color: "#c0392b" },
  { name: "page cache", color: "#5d8aa8" },
  { name: "DMA / page lists", color: "#e6a23c" },
  { name: "kernel image / reserved", color: "#555555" },
];

function pictureOf(k: Kernel, title: string): string {
  const ramEnd = k.machine.memmap.ramEnd();
  const frames = Math.ceil(ramEnd / PAGE_SIZE);
  const states = new Uint8Array(frames);
  for (let pfn = 0; pfn < frames; pfn++) {
    if (!k.uvm.isManaged(pfn)) continue;
    if (k.uvm.isFree(pfn)) {
      states[pfn] = 1;
      continue;
    }
    const owner = k.uvm.owner(pfn);
    const inList = (k.uvm.pageFlags(pfn) & PG_PGLIST) !== 0;
    states[pfn] = owner === OWNER_KMEM
      ? 2
      : owner === OWNER_CACHE
      ? 3
      : owner === OWNER_DMA || inList
      ? 4
      : 5;
  }
  const arenas = [k.kmem.kmem, k.kmem.heap].map((a) => {
    const segs: [string, number, number][] = [];
    a.walk(0x13, (start, size, type) => segs.push([type, start, size]));
    return { name: a.name, segs };
  });
  return renderSvg({ title, pageStates: states, styles: PAGE_STYLES, pageSize: PAGE_SIZE, arenas });
}

/** Asks Deno (when it is the runtime) for write access to `file` alone. */
async function mayWrite(file: string): Promise<void> {
  const deno =
    (globalThis as { Deno?: { permissions: { request(d: object): Promise<{ state: string }> } } })
      .Deno;
  if (deno === undefined) return;
  const { state } = await deno.permissions.request({ name: "write", path: file });
  if (state !== "granted") {
    throw new UsageError(`no write access to ${file} (run with --allow-write=${file})`);
  }
}

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
  const files = [options.recordVmem, options.recordPglist, options.svg].filter((f) =>
    f !== undefined
  );
  try {
    for (const f of files) await mayWrite(f);
  } catch (e) {
    process.stderr.write(`boot.ts: ${(e as Error).message}\n`);
    return 2;
  }
  const human = !options.quiet && !options.json;
  const log = human ? (line: string) => process.stdout.write(line + "\n") : () => {};
  let picture = "";
  const draw = options.svg === undefined ? null : (k: Kernel, workload: string) => {
    const when = workload === "boot" ? "after boot" : `at the peak of workload ${workload}`;
    picture = pictureOf(k, `${options.machine} machine ${when}`);
  };
  const r = await run(options, log, draw);
  if (options.recordVmem !== undefined) writeFileSync(options.recordVmem, r.vmemTrace!.text());
  if (options.recordPglist !== undefined) {
    writeFileSync(options.recordPglist, r.pglistTrace!.text());
  }
  if (options.svg !== undefined) {
    writeFileSync(options.svg, picture);
  }
  if (options.json) {
    process.stdout.write(
      JSON.stringify({
        status: r.status,
        bootMs: r.bootMs,
        summary: r.summary,
        workloads: r.workloads,
        problems: r.problems,
      }) + "\n",
    );
  } else if (human) {
    for (const line of formatSummary(r)) process.stdout.write(line + "\n");
  } else {
    for (const p of r.problems) process.stderr.write(`boot.ts: ${p}\n`);
  }
  return r.status;
}
