/**
 * One run of the kernel as `boot.ts` does it, as a library function: build
 * the machine, boot, run the workloads, check everything, shut down, and
 * hand back everything the run produced (summary, arena figures, traces and
 * picture as text). Nothing here touches files or the process, and nothing
 * it imports uses a `node:` module, so it runs in a browser too; the command
 * (boot/cli.ts) writes what this returns.
 *
 * Figures of the arenas (heap, kmem_va, kmem, pid; see mm/fragmentation.ts)
 * are taken at each workload's peak (where the workload calls
 * `Kernel.peak`: after its operations, before it frees what it holds) and
 * at rest (after the workloads and a reap, before shutdown). With sampling
 * on, every N arena operations of the kernel (kmem_alloc, kmem_free,
 * process IDs, kernel mappings) add a point to a series: the heap's bytes in
 * use, the kmem arena's footprint and fragmentation, and free pages.
 *
 * @module
 */

import { createMachine } from "../machine/mod.ts";
import { formatDmaSummary, Kernel, type KernelSummary, PAGE_SIZE } from "./kernel.ts";
import type { BootOptions } from "./boot_options.ts";
import { DEFAULT_OPS, WORKLOAD_TABLE } from "./workloads.ts";
import type { WorkloadReport } from "./workload.ts";
import { PglistTrace, VmemTrace } from "./trace.ts";
import { type HeapSample, type PeakPicture, physicalPicture, renderSvg } from "./svg.ts";
import { DEVICE_MODELS, DEVICE_NAMES } from "../devices/mod.ts";
import { KMEM_POLICIES, type KmemPolicy, type VmemRecorder } from "../mm/kmem.ts";
import type { Arena } from "../mm/arena.ts";
import { type ArenaFigures, arenaFigures } from "../mm/fragmentation.ts";
import { checkInteger, describe, KernelError } from "../mm/errors.ts";
import { VMEM_ALLOC, VMEM_FREE, VMEM_SPAN } from "../mm/vmem.ts";

/** The arenas' figures at one workload's peak. */
export interface ArenaPeak {
  /** The workload ("boot" for the state right after boot). */
  workload: string;
  /** heap, kmem_va, kmem and pid. */
  arenas: ArenaFigures[];
}

/** Everything one run produced. */
export interface RunResult {
  /** Exit status: 0 clean, 1 a leak, a failed check, a DMA fault or a data mismatch. */
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
  /** The heap arenas' allocation policy. */
  policy: string;
  /** The arenas at each peak, in the order reached (boot first). */
  peaks: ArenaPeak[];
  /** The arenas at rest, after the workloads. */
  rest: ArenaFigures[];
  /** The heap every `sample` arena operations (empty without sampling). */
  samples: HeapSample[];
  /** The vmem trace, when recorded. */
  vmemTrace?: VmemTrace;
  /** The pglist trace, when recorded. */
  pglistTrace?: PglistTrace;
  /** The vmem trace as file text, when recorded. */
  vmemText?: string;
  /** The pglist trace as file text, when recorded. */
  pglistText?: string;
  /** The picture as SVG text, when asked for. */
  svg?: string;
}

/** Points of the heap's series when a picture is asked for without `--sample`. */
const PICTURE_POINTS = 300;

/** Forwards the kernel's arena operations to a trace, and samples every `every` of them. */
class ArenaOps implements VmemRecorder {
  readonly #trace: VmemTrace | undefined;
  readonly #every: number;
  readonly #sample: (op: number) => void;
  #ops = 0;

  constructor(trace: VmemTrace | undefined, every: number, sample: (op: number) => void) {
    this.#trace = trace;
    this.#every = every;
    this.#sample = sample;
  }

  create(arena: Arena, base: number, size: number): void {
    this.#trace?.create(arena, base, size);
  }

  alloc(arena: Arena, size: number, flags: readonly string[], addr: number): void {
    this.#trace?.alloc(arena, size, flags, addr);
    this.#tick();
  }

  free(arena: Arena, addr: number, size: number): void {
    this.#trace?.free(arena, addr, size);
    this.#tick();
  }

  comment(text: string): void {
    this.#trace?.comment(text);
  }

  #tick(): void {
    if (++this.#ops % this.#every === 0) this.#sample(this.#ops);
  }
}

function kernelArenas(k: Kernel): Arena[] {
  return [k.kmem.heap, k.kmem.kmemVa, k.kmem.kmem, k.pids];
}

/** Physical memory and the arenas of `k` now, for the picture. */
function picture(k: Kernel, label: string): PeakPicture {
  return {
    label,
    physical: physicalPicture(k),
    arenas: kernelArenas(k).map((a) => {
      const segs: [string, number, number][] = [];
      a.walk(
        VMEM_ALLOC | VMEM_FREE | VMEM_SPAN,
        (start, size, type) => segs.push([type, start, size]),
      );
      return { name: a.name, segs };
    }),
  };
}

/**
 * What {@link run} takes for an option left out: what `boot.ts` does with
 * no flag (the 512 MiB pc machine, every device, every workload, seed 1).
 */
export const RUN_DEFAULTS: Readonly<BootOptions> = Object.freeze({
  machine: "pc",
  workload: "all",
  seed: 1,
  devices: [...DEVICE_NAMES],
  json: false,
  quiet: false,
  ignoreTags: false,
  vmem: "illumos",
  dmaDebug: false,
  driverBugs: [],
  physseg: "bsearch",
  iommu: false,
  help: false,
});

/**
 * Boots and runs as `options` say (each left out as in
 * {@link RUN_DEFAULTS}); prints nothing. The options `recordVmem`,
 * `recordPglist` and `svg`, when set (the command line sets them to file
 * names), put the traces' and the picture's text in the result. `logLine`
 * receives the boot log a person reads; `peakListener` is called at each
 * workload's peak (and once after boot) with the kernel as it is there. A
 * policy the flavor has not, or a `sample` that is not a positive integer,
 * is refused with EINVAL before anything is built.
 *
 * @example The heap workload on the ISA machine, as data
 * ```ts
 * import { run } from "./run.ts";
 *
 * const r = await run({ machine: "isa", workload: "heap", devices: [], ops: 500 });
 * console.log(r.status, (r.workloads[0]!.counts.allocs ?? 0) > 0); // 0 true
 * ```
 */
export async function run(
  given?: Partial<BootOptions>,
  logLine?: (line: string) => void,
  peakListener?: ((k: Kernel, workload: string) => void) | null,
): Promise<RunResult> {
  const options: BootOptions = { ...RUN_DEFAULTS, ...given };
  const log = logLine ?? (() => {});
  const onPeak = peakListener ?? null;
  const names = options.workload === "all"
    ? Object.keys(WORKLOAD_TABLE)
    : options.workload === "none"
    ? []
    : [options.workload];
  const flavor = options.vmem ?? "illumos";
  const policies: readonly string[] | undefined = Object.hasOwn(KMEM_POLICIES, flavor)
    ? KMEM_POLICIES[flavor]
    : undefined;
  if (policies === undefined) {
    throw new KernelError("EINVAL", `vmem must be illumos or freebsd, got ${describe(flavor)}`);
  }
  const policy = options.policy === undefined ? policies[0]! : options.policy;
  if (typeof policy !== "string" || !policies.includes(policy)) {
    throw new KernelError(
      "EINVAL",
      `policy must be one of ${policies.join(", ")} for ${flavor} arenas, got ${describe(policy)}`,
    );
  }
  if (options.sample !== undefined) checkInteger("sample", options.sample, 1);
  const drawing = options.svg !== undefined;
  let totalOps = 0;
  for (const n of names) totalOps += options.ops ?? DEFAULT_OPS[n] ?? 0;
  const every = options.sample ??
    (drawing ? Math.max(1, Math.floor(totalOps / PICTURE_POINTS)) : 0);

  const vmemTrace = options.recordVmem !== undefined ? new VmemTrace() : undefined;
  const pglistTrace = options.recordPglist !== undefined ? new PglistTrace() : undefined;
  let kernel: Kernel | null = null;
  let workload = "boot";
  const samples: HeapSample[] = [];
  const sample = (op: number) => {
    if (kernel === null) return;
    const f = arenaFigures(kernel.kmem.kmem);
    samples.push({
      op,
      workload,
      inUse: kernel.kmem.stats.inuse,
      footprint: f.footprint,
      fragmentation: f.fragmentation,
      freePages: kernel.uvm.free,
    });
  };
  const ops = every > 0 || vmemTrace !== undefined
    ? new ArenaOps(vmemTrace, every > 0 ? every : Infinity, sample)
    : undefined;

  const t0 = performance.now();
  const machine = createMachine({
    preset: options.machine,
    ramSize: options.memory,
    iommu: options.iommu === true,
  });
  for (const name of options.devices) DEVICE_MODELS[name](machine);
  const k = kernel = new Kernel(machine, {
    log,
    vmemTrace: ops,
    pglistTrace,
    ignoreTags: options.ignoreTags,
    dmaDebug: options.dmaDebug,
    driverBugs: options.driverBugs,
    bouncePages: options.bouncePages,
    physseg: options.physseg,
    iommu: options.iommu === true,
    vmem: flavor,
    policy: policy as KmemPolicy,
  });
  const bootMs = performance.now() - t0;
  const peaks: ArenaPeak[] = [];
  const pictures: PeakPicture[] = [];
  k.onPeak = (kk, name) => {
    peaks.push({ workload: name, arenas: kernelArenas(kk).map(arenaFigures) });
    // The state after boot is drawn only for a run without workloads.
    if (drawing && (name !== "boot" || names.length === 0)) {
      pictures.push(
        picture(kk, name === "boot" ? "after boot" : `at the peak of workload ${name}`),
      );
    }
    onPeak?.(kk, name);
  };
  // The state right after boot is the first peak: a run without a workload
  // is drawn as it booted, the others at their own peaks.
  k.peak("boot");
  log(`boot: kernel ready in ${bootMs.toFixed(1)} ms`);
  if (policy !== policies[0]) log(`heap arenas: ${policy}`);

  const workloads: WorkloadReport[] = [];
  const problems: string[] = [...k.attachErrors];
  for (const name of names) {
    const w = WORKLOAD_TABLE[name];
    if (w === undefined) {
      problems.push(`workload ${name} is not available on this kernel`);
      continue;
    }
    const n = options.ops ?? DEFAULT_OPS[name]!;
    log(`workload ${name}: ${n} operations, seed ${options.seed}`);
    workload = name;
    const report = await w(k, options.seed, n);
    workloads.push(report);
    const counts = Object.entries(report.counts).map(([c, v]) => `${c} ${v}`).join(", ");
    log(`workload ${name}: done in ${report.ms.toFixed(1)} ms: ${counts}`);
    for (const e of report.errors) problems.push(`${name}: ${e}`);
    try {
      k.check();
    } catch (e) {
      problems.push(`check after ${name}: ${(e as Error).message}`);
    }
  }
  workload = "rest";
  k.reap();
  k.traceState();
  try {
    k.check();
  } catch (e) {
    problems.push(`final check: ${(e as Error).message}`);
  }
  const rest = kernelArenas(k).map(arenaFigures);
  if (drawing && pictures.length === 0) pictures.push(picture(k, "at rest, after the workloads"));
  const summary = k.summary();
  const l = summary.leaks = k.shutdown();
  try {
    k.check();
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
  // Faults are never silent: a fault no breach explains, a breach no fault
  // caught, wrong data, a DMA-API violation or what a driver left behind.
  summary.dmaDebug = k.dmaDebugSummary();
  problems.push(...k.dmaProblems());

  let svg: string | undefined;
  if (drawing) {
    const machineName = options.memory === undefined
      ? options.machine
      : `${options.machine} ${+(options.memory / 2 ** 20).toFixed(0)} MiB`;
    svg = renderSvg({
      title: `${machineName} machine, workload ${options.workload}, seed ${options.seed}` +
        (flavor === "illumos" ? "" : `, ${flavor} vmem`) +
        (policy === policies[0] ? "" : `, heap arenas ${policy}`),
      peaks: pictures,
      samples: every > 0 ? samples : [],
    });
  }
  return {
    status: problems.length === 0 ? 0 : 1,
    kernel: k,
    summary,
    workloads,
    problems,
    bootMs,
    policy,
    peaks,
    rest,
    samples: options.sample !== undefined ? samples : [],
    vmemTrace,
    pglistTrace,
    vmemText: vmemTrace?.text(),
    pglistText: pglistTrace?.text(),
    svg,
  };
}

/** The object `--json` prints: the summary, the workloads, the arenas' figures and samples. */
export function runJson(r: RunResult): Record<string, unknown> {
  const out: Record<string, unknown> = {
    status: r.status,
    bootMs: r.bootMs,
    policy: r.policy,
    summary: r.summary,
    workloads: r.workloads,
    peaks: r.peaks,
    rest: r.rest,
    problems: r.problems,
  };
  if (r.samples.length > 0) out.samples = r.samples;
  return out;
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
  out.push(...formatDmaSummary(s));
  const l = s.leaks;
  const leaked = l.pages + l.heapBytes + l.kvaBytes + l.ids + l.pageLists + l.handlers +
    l.dmaMaps + l.dmaMemory + l.dmaTags + (l.iovaBytes ?? 0) + (l.ioTablePages ?? 0);
  out.push(
    `  leaks        ${
      leaked === 0 ? "0" : "YES"
    } after shutdown: pages ${l.pages}, heap bytes ${l.heapBytes}, ` +
      `kva bytes ${l.kvaBytes}, ids ${l.ids}, page lists ${l.pageLists}, handlers ${l.handlers}, ` +
      `maps ${l.dmaMaps}, DMA memory ${l.dmaMemory}, tags ${l.dmaTags}` +
      (l.iovaBytes === undefined
        ? ""
        : `, I/O virtual bytes ${l.iovaBytes}, I/O table pages ${l.ioTablePages}`),
  );
  for (const p of r.problems) out.push(`  PROBLEM      ${p}`);
  out.push(r.status === 0 ? "ok" : `FAILED (${r.problems.length} problems)`);
  return out;
}
