/**
 * The kernel in TypeScript: {@link Kernel} brings a machine up (memory
 * map, physload, page array, free lists, page daemon, pmap, arenas, heap,
 * bus_dma, devices), and the workloads exercise it; {@link run} does what
 * `boot.ts` does and returns everything instead of printing it. The command
 * line itself (`boot.ts`, `boot/cli.ts`) is not part of this entry point.
 *
 * @example A kernel on the 16 MiB ISA machine
 * ```ts
 * import { createMachine } from "../machine/mod.ts";
 * import { Kernel } from "./mod.ts";
 *
 * const k = new Kernel(createMachine({ preset: "isa" }));
 * const va = k.kmem.alloc(100); // a kernel virtual address backed by RAM
 * k.kmem.free(va, 100);
 * k.shutdown(); // every count 0: nothing leaked
 * ```
 *
 * @example What `boot.ts -m isa -w heap` does, as data
 * ```ts
 * import { run } from "./mod.ts";
 *
 * const r = await run({ machine: "isa", workload: "heap", devices: [] });
 * console.log(r.status, r.summary.leaks.pages); // 0 0
 * ```
 *
 * @module
 */

export {
  type ArenaSummary,
  type DeviceSummary,
  type DmaDebugSummary,
  formatDmaSummary,
  type FreeListSummary,
  Kernel,
  KERNEL_IMAGE_BASE,
  KERNEL_IMAGE_SIZE,
  type KernelLeaks,
  type KernelOptions,
  type KernelSummary,
  KVA_BASE,
  PID_MAX,
} from "./kernel.ts";
export { type ArenaPeak, formatSummary, run, runJson, type RunResult } from "./run.ts";
export { DEFAULT_OPS, type Workload, WORKLOAD_TABLE, type WorkloadReport } from "./workloads.ts";
export { PglistTrace, runsOf, Trace, VmemTrace } from "./trace.ts";
export { type ArenaPicture, type MachinePicture, type PageStateStyle, renderSvg } from "./svg.ts";
export type { HeapSample, PeakPicture, PhysicalPicture } from "./svg.ts";
export {
  type BootOptions,
  type DeviceName,
  DEVICES,
  type PhysSegName,
  PHYSSEGS,
  POLICIES,
  type PolicyName,
  type PresetName,
  PRESETS,
  VMEM_FLAVORS,
  type WorkloadName,
  WORKLOADS,
} from "./boot_options.ts";
// The layers below, as types: the kernel's signatures name them.
export type * from "../machine/mod.ts";
export type * from "../mm/mod.ts";
export type * from "../devices/mod.ts";
