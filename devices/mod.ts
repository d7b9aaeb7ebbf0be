/**
 * The devices: per device class a hardware model (`model.ts`, attached to
 * the machine before the kernel boots), a kernel driver (`driver.ts`,
 * attached by the kernel's autoconfiguration to each device the machine's
 * table lists) and the register layout both use (`reg.ts`).
 *
 * Drivers see the kernel only through {@link DriverKernel}. The kernel
 * matches devices to drivers through a {@link DriverRegistry}: the built-in
 * drivers are in {@link builtinDrivers}, and a driver of your own joins them
 * with `register`. Every built-in driver extends {@link DriverBase} (the
 * part every driver shares, in `driver.ts`): its bus_dma tag comes from its
 * device's own limits (or is permissive when the kernel ignores tags), it
 * programs registers through the bus, waits for completion interrupts and
 * checks the data it moved; `detach` gives back everything it took.
 *
 * ```ts
 * import { createMachine } from "../machine/mod.ts";
 * import { builtinDrivers, DEVICE_MODELS } from "./mod.ts";
 * const m = createMachine({ preset: "pc", ramSize: 64 * 2 ** 20 });
 * DEVICE_MODELS.nvme(m);
 * const registry = builtinDrivers();
 * console.log(registry.match("nvme")?.name); // "nvme"
 * ```
 *
 * @module
 */

export { DRIVER_BUGS, type DriverBug, type DriverKernel } from "./kernel_if.ts";
export { type DriverEntry, DriverRegistry } from "./autoconf.ts";
export { builtinDrivers, DEVICE_MODELS, DEVICE_NAMES, type DeviceName } from "./builtin.ts";
export {
  COMPLETION_TIMEOUT,
  type DeviceDriver,
  DriverBase,
  type DriverSpec,
  type DriverStats,
  type TransferResult,
} from "./driver.ts";
export { IsaDmaModel } from "./isa/model.ts";
export { NIC_LATENCY, NicModel, type NicOptions } from "./nic/model.ts";
export { NVME_LATENCY, NvmeModel, type NvmeOptions, SparseDisk } from "./nvme/model.ts";
export { CaptureModel } from "./dma30/model.ts";
export { type IsaCommand, IsaDriver } from "./isa/driver.ts";
export { NIC_MTU, NicDriver } from "./nic/driver.ts";
export { NVME_MAX_TRANSFER, NvmeDriver } from "./nvme/driver.ts";
export { CaptureDriver, type CaptureFrame } from "./dma30/driver.ts";
export { ISA_DMA } from "./isa/reg.ts";
export { NIC_DMA } from "./nic/reg.ts";
export { NVME_DMA } from "./nvme/reg.ts";
export { CAP_DMA } from "./dma30/reg.ts";
// The layers below, as types: the drivers' and models' signatures name them.
export type * from "../machine/mod.ts";
export type * from "../mm/mod.ts";
