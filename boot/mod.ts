/**
 * The kernel in TypeScript: {@link Kernel} brings a machine up (memory
 * map, physload, page array, free lists, page daemon, pmap, arenas, heap,
 * devices), and the workloads exercise it. The command line (`boot.ts`)
 * lives apart, in `boot/cli.ts`.
 *
 * ```ts
 * import { createMachine } from "../machine/mod.ts";
 * import { Kernel } from "./mod.ts";
 * const k = new Kernel(createMachine({ preset: "isa" }));
 * const va = k.kmem.alloc(100);
 * k.kmem.free(va, 100);
 * k.shutdown();
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
  PAGE_SIZE,
  PID_MAX,
} from "./kernel.ts";
export { type ArenaPeak, formatSummary, run, runJson, type RunResult } from "./run.ts";
export { DEFAULT_OPS, type Workload, WORKLOAD_TABLE, type WorkloadReport } from "./workloads.ts";
export { PglistTrace, runsOf, Trace, VmemTrace } from "./trace.ts";
export { type ArenaPicture, type MachinePicture, type PageStateStyle, renderSvg } from "./svg.ts";
