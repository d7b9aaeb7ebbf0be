/**
 * The hardware a hypervisor gives its guest: physical RAM in memory slots
 * that materialise on first write, the firmware memory map, the MMIO bus,
 * an interrupt controller, a clock on which devices queue the work they
 * complete later, and per-device DMA ports that check every transfer
 * against the device's constraints.
 *
 * ```ts
 * import { createMachine, DMA_24BIT } from "./machine/mod.ts";
 * const m = createMachine({ preset: "pc", ramSize: 256 * 1024 * 1024 });
 * const { window, irq, dma } = m.attach({
 *   name: "dev0", type: "example", dma: { maxAddress: DMA_24BIT },
 *   registers: { read32: (off) => 0, write32: (off, v) => {} },
 * });
 * m.ram.write32(0x100000, 42);
 * ```
 *
 * @module
 */

export {
  type AccessKind,
  hex,
  MachineError,
  type MachineErrorCode,
  MachineFault,
} from "./errors.ts";
export { DEFAULT_CHUNK_SIZE, Ram, type RamOptions, type RamSlot } from "./ram.ts";
export {
  MemoryMap,
  type MemoryRegion,
  MMIO_HOLE_BASE,
  MMIO_HOLE_END,
  PAGE_SIZE,
  type Preset,
  presetMemoryMap,
  type PresetOptions,
  type RegionType,
} from "./memmap.ts";
export { Bus, type MmioHandlers, type MmioWindow } from "./bus.ts";
export { InterruptController, type InterruptHandler, IrqLine } from "./irq.ts";
export { Clock } from "./clock.ts";
export {
  DMA_24BIT,
  DMA_28BIT,
  DMA_30BIT,
  DMA_32BIT,
  DMA_64BIT,
  DMA_CONSTRAINT_FIELDS,
  DMA_NO_LIMIT,
  type DmaConstraints,
  type DmaFault,
  type DmaLimits,
  dmaLimits,
  type DmaMonitor,
  DmaPort,
  listProblem,
  segmentProblem,
} from "./dma.ts";
export {
  type Attachment,
  createMachine,
  type DeviceInfo,
  type DeviceSpec,
  Machine,
  type MachineOptions,
} from "./machine.ts";
export {
  DEVICE_WINDOW,
  DeviceModel,
  type DeviceModelSpec,
  FAULT_ACCESS,
  FAULT_DECODE,
  FAULT_NONE,
  fnv1a,
  FNV1A_INIT,
  fourcc,
  INT_DONE,
  INT_ERROR,
  REG_FAULT_ADDR_HI,
  REG_FAULT_ADDR_LO,
  REG_FAULT_COUNT,
  REG_FAULT_KIND,
  REG_FAULT_LEN,
  REG_ID,
  REG_IER,
  REG_ISR,
  TWO32,
} from "./device.ts";
