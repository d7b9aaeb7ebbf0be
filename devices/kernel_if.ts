/**
 * What a driver sees of the kernel: a narrow interface, defined here below
 * the kernel so that no driver depends on how the kernel is built.
 *
 * Theory. A driver needs bus_dma (tags, maps, DMA memory), access to kernel
 * virtual memory (its DMA memory and the buffers it is handed), the MMIO
 * bus for its registers, interrupt establishment, the machine's clock for
 * timeouts, the boot log, and two switches: whether DMA tags are ignored
 * (a test of the machine: the devices must fault what bus_dma would have
 * prevented) and which deliberate driver bugs are on (a test of DMA-API
 * debugging). The kernel provides all of this; anything
 * else that does can host drivers.
 *
 * Memory access goes through {@link DriverKernel.read}, `write` and `fill`
 * rather than the pmap directly, so that the kernel's DMA-API debugging
 * sees what the CPU touches.
 *
 * @module
 */

import type { Bus, Clock, InterruptController } from "../machine/mod.ts";
import type { BusDma } from "../mm/bus_dma.ts";

/**
 * A deliberate driver bug: `skip-sync` (the drivers call no
 * bus_dmamap_sync), `early-unload` (the NVMe driver unloads its data map
 * before the command completes).
 */
export type DriverBug = "skip-sync" | "early-unload";
/** The deliberate driver bugs the built-in drivers know (`--driver-bugs`). */
export const DRIVER_BUGS: readonly DriverBug[] = Object.freeze(["skip-sync", "early-unload"]);

/** The kernel as a driver sees it. */
export interface DriverKernel {
  /** bus_dma: tags, DMA memory, maps and bounce pages. */
  readonly busDma: BusDma;
  /** The MMIO bus, for register access. */
  readonly bus: Pick<Bus, "read32" | "write32">;
  /** The interrupt controller, to establish and remove handlers. */
  readonly irq: Pick<InterruptController, "establish" | "disestablish">;
  /** The machine's clock, for timeouts. */
  readonly clock: Pick<Clock, "schedule" | "cancel" | "now">;
  /** True when drivers must use permissive tags instead of their devices' (faults must follow). */
  readonly ignoreTags: boolean;
  /** Deliberate driver bugs that are on. */
  readonly driverBugs: ReadonlySet<DriverBug>;
  /** Takes pending interrupts now (after starting a device that completes inside the store). */
  interruptWindow(): void;
  /** Copies kernel virtual memory at `va` into `dst`. */
  read(va: number, dst: Uint8Array): void;
  /** Copies `src` to kernel virtual memory at `va`. */
  write(va: number, src: Uint8Array): void;
  /** Sets `len` bytes of kernel virtual memory at `va` to `byte`. */
  fill(va: number, len: number, byte: number): void;
  /** Writes a line to the boot log. */
  log(line: string): void;
}
