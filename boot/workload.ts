/**
 * What a workload is and what it reports: the shape every workload shares
 * (the built-in ones in workloads.ts and dma_workload.ts, and any of a
 * user's), in a file of its own so that the workload files import it and
 * not each other.
 *
 * @module
 */

import type { Kernel } from "./kernel.ts";

/** What a workload reports. */
export interface WorkloadReport {
  /** Workload name. */
  name: string;
  /** Operations carried out. */
  ops: number;
  /** Wall time in milliseconds. */
  ms: number;
  /** Counters particular to the workload. */
  counts: Record<string, number>;
  /** Failures seen (data mismatches, unexpected refusals); empty when all went well. */
  errors: string[];
}

/**
 * A workload: runs on a booted kernel with a seed and a size. It calls
 * `k.peak(name)` where it holds the most memory, before it frees.
 */
export type Workload = (k: Kernel, seed: number, ops: number) => Promise<WorkloadReport>;
