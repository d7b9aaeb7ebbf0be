/**
 * The hardware a hypervisor gives its guest: physical RAM in memory slots
 * that materialise on first write, the firmware memory map, the MMIO bus,
 * an interrupt controller, a clock on which devices queue the work they
 * complete later, per-device DMA ports that check every transfer against
 * the device's constraints, and an optional IOMMU that translates the
 * addresses of the devices placed behind it.
 *
 * @example A 24-bit device with one register, and a DMA it may not do
 * ```ts
 * import { createMachine, DMA_24BIT } from "./mod.ts";
 *
 * const m = createMachine({ preset: "pc", ramSize: 256 * 2 ** 20 });
 * let status = 0;
 * const { dma } = m.attach({
 *   name: "dev0",
 *   type: "example",
 *   dma: { maxAddress: DMA_24BIT },
 *   registers: { read32: () => status, write32: (_off, v) => void (status = v) },
 * });
 * m.ram.write32(0x100000, 42);
 * const buf = new Uint8Array(4);
 * dma.read(0x100000, buf); // below 16 MiB: the device reads 42
 * dma.read(0x2000000, buf); // above its reach: a fault, nothing read
 * console.log(buf[0], dma.faults); // 42 1
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
  type DmaFaultKind,
  type DmaLimits,
  dmaLimits,
  type DmaMonitor,
  DmaPort,
  type DmaTranslator,
  listProblem,
  segmentProblem,
} from "./dma.ts";
export {
  Iommu,
  IOMMU_ADDRESS_BITS,
  IOMMU_CTRL_TE,
  IOMMU_CTX_CLEAR,
  IOMMU_CTX_SET,
  IOMMU_ENTRIES,
  IOMMU_FAULT_REASONS,
  IOMMU_ID,
  IOMMU_INV_DOMAIN,
  IOMMU_INV_GLOBAL,
  IOMMU_INV_PAGES,
  IOMMU_IOTLB_ENTRIES,
  IOMMU_LEVELS,
  IOMMU_MAX_DOMAIN,
  IOMMU_MAX_SOURCES,
  IOMMU_PAGE,
  IOMMU_REG_CAP,
  IOMMU_REG_CTRL,
  IOMMU_REG_CTX_CMD,
  IOMMU_REG_CTX_DOMAIN,
  IOMMU_REG_CTX_ROOT_HI,
  IOMMU_REG_CTX_ROOT_LO,
  IOMMU_REG_FAULT_ADDR_HI,
  IOMMU_REG_FAULT_ADDR_LO,
  IOMMU_REG_FAULT_COUNT,
  IOMMU_REG_FAULT_INFO,
  IOMMU_REG_FAULT_SOURCE,
  IOMMU_REG_ID,
  IOMMU_REG_INV_ADDR_HI,
  IOMMU_REG_INV_ADDR_LO,
  IOMMU_REG_INV_CMD,
  IOMMU_REG_INV_COUNT,
  IOMMU_REG_INV_DOMAIN,
  IOMMU_REG_INV_PAGES,
  IOMMU_REG_IOTLB_HITS,
  IOMMU_REG_IOTLB_MISSES,
  IOMMU_REG_IOTLB_SIZE,
  IOMMU_REG_SOURCE,
  IOMMU_REG_STATUS,
  IOMMU_ST_BAD_COMMAND,
  IOMMU_ST_BAD_DOMAIN,
  IOMMU_ST_BAD_ROOT,
  IOMMU_ST_BAD_SOURCE,
  IOMMU_ST_OK,
  type IommuFault,
  type IommuFaultReason,
  type IommuOptions,
  type IommuScopeEntry,
  IOPTE_READ,
  IOPTE_WRITE,
} from "./iommu.ts";
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
  FAULT_TRANSLATION,
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
