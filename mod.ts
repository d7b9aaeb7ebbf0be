/**
 * vmemu: a toy machine as a hypervisor sees one, and a kernel in TypeScript
 * whose allocators make the decisions of real ones.
 *
 * - The machine (`./machine`): RAM in memory slots that cost the host only
 *   what the guest touches, the firmware memory map, the MMIO bus, interrupts
 *   and DMA ports that check every transfer against a device's constraints.
 * - Memory management (`./mm`): illumos and FreeBSD vmem arenas, NetBSD's
 *   physical segments and `uvm_pglistalloc`, the kernel pmap, a page-backed
 *   kernel heap, the page daemon and bus_dma. vmem works on its own, over any
 *   set of integers.
 * - Devices (`./devices`): device models and their drivers.
 * - The kernel (`./boot`): brings a machine up and runs workloads on it.
 *
 * This entry point exports all four. Nothing it reaches needs a Node API: it
 * runs under Deno, Bun and in a browser.
 *
 * @example An arena of process IDs
 * ```ts
 * import { VM_NOSLEEP, Vmem } from "./mod.ts";
 *
 * const pids = Vmem.create("pid", 1, 99_999, 1);
 * const pid = pids.alloc(1, VM_NOSLEEP);
 * pids.free(pid, 1);
 * ```
 *
 * @module
 */

export * from "./machine/mod.ts";
export * from "./mm/mod.ts";
export * from "./devices/mod.ts";
export * from "./boot/mod.ts";
