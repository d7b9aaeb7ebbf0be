/**
 * The kernel in TypeScript and its front end: {@link Kernel} brings a
 * machine up (memory map, physload, page array, free lists, page daemon,
 * pmap, arenas, heap, devices); {@link run} and {@link main} are what
 * `boot.ts` does.
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
  type FreeListSummary,
  Kernel,
  KERNEL_IMAGE_BASE,
  KERNEL_IMAGE_SIZE,
  type KernelOptions,
  type KernelSummary,
  KVA_BASE,
  PAGE_SIZE,
  PID_MAX,
} from "./kernel.ts";
export { formatSummary, main, run, type RunResult } from "./cli.ts";
export {
  type BootOptions,
  type DeviceName,
  DEVICES,
  parseBootArgs,
  parseSize,
  type PhysSegName,
  PHYSSEGS,
  type PresetName,
  PRESETS,
  USAGE,
  UsageError,
  type WorkloadName,
  WORKLOADS,
} from "./options.ts";
export { DEFAULT_OPS, type Workload, WORKLOAD_TABLE, type WorkloadReport } from "./workloads.ts";
export { PglistTrace, runsOf, Trace, VmemTrace } from "./trace.ts";
export { type ArenaPicture, type MachinePicture, type PageStateStyle, renderSvg } from "./svg.ts";
