/**
 * What a run of the kernel can be told: the machine presets, workloads,
 * heap policies and vmem flavors, segment orders, and {@link BootOptions}
 * itself. `boot.ts` fills these from its flags (boot/options.ts); the
 * library's {@link run} takes them as they are.
 *
 * @module
 */

import { KMEM_POLICIES, type KmemPolicy } from "../mm/kmem.ts";
import type { VmemFlavor } from "../mm/arena.ts";
import { DEVICE_NAMES, type DeviceName, type DriverBug } from "../devices/mod.ts";

/** The machine presets the firmware knows. */
export const PRESETS: readonly PresetName[] = ["isa", "pc", "big"];
/** A machine preset name. */
export type PresetName = "isa" | "pc" | "big";

/** The workloads the kernel can run after boot. */
export const WORKLOADS: readonly WorkloadName[] = ["all", "heap", "pressure", "ids", "dma", "none"];
/** A workload name. */
export type WorkloadName = "all" | "heap" | "pressure" | "ids" | "dma" | "none";

/** Whose vmem the heap arenas can be. */
export const VMEM_FLAVORS: readonly VmemFlavor[] = ["illumos", "freebsd"];

/** The devices the kernel can attach (the built-in devices of `devices/`). */
export const DEVICES: readonly DeviceName[] = DEVICE_NAMES;
export type { DeviceName };

/** The allocation policies of the heap arenas. */
export const POLICIES: readonly KmemPolicy[] = KMEM_POLICIES.illumos;
/** A policy name. */
export type PolicyName = KmemPolicy;
/** The orders uvm_pglistalloc can search physical segments in (`VM_PHYSSEG_STRAT`). */
export const PHYSSEGS: readonly PhysSegName[] = ["bsearch", "bigfirst"];
/** A segment order. */
export type PhysSegName = "bsearch" | "bigfirst";

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
  /** Allocation policy of the heap arenas (heap, kmem_va, kmem); instant-fit when absent. */
  policy?: PolicyName;
  /** Sample the heap every this many arena operations. */
  sample?: number;
  /** Whose vmem builds the heap arenas. */
  vmem: "illumos" | "freebsd";
  /** Track every DMA map and report misuse. */
  dmaDebug: boolean;
  /** Deliberate driver bugs to turn on. */
  driverBugs: DriverBug[];
  /** Pages of the bounce pool, or undefined for the kernel's default. */
  bouncePages?: number;
  /** The order uvm_pglistalloc searches physical segments in. */
  physseg: PhysSegName;
  /** Put every device behind an IOMMU and have the kernel use it. */
  iommu: boolean;
  /** Print the usage text and do nothing else. */
  help: boolean;
}
