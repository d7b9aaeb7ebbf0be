/**
 * The devices: per device class a hardware model (`model.ts`, attached to
 * the machine before the kernel boots) and a kernel driver (`driver.ts`,
 * attached by the kernel's devices stage to each device the machine's
 * table lists).
 *
 * {@link DEVICE_TABLE} is the autoconfiguration table: for each name the
 * command line knows (`isa`, `nic`, `nvme`, `dma30`), how to put the model
 * on a machine and which driver matches the model's device type. Every
 * driver implements {@link DeviceDriver} on top of {@link DriverBase} (the
 * part every driver shares, in `driver.ts`): it builds its bus_dma tag from
 * its model's DMA constraints (or a permissive one when the kernel ignores
 * tags), programs registers through the bus, takes completion interrupts
 * and checks the data it moved; `detach` gives back everything it took.
 *
 * ```ts
 * import { createMachine } from "../machine/mod.ts";
 * import { Kernel } from "../boot/kernel.ts";
 * import { DEVICE_TABLE, NvmeDriver } from "./mod.ts";
 * const m = createMachine({ preset: "pc", ramSize: 64 * 2 ** 20 });
 * DEVICE_TABLE.nvme.attachModel(m);
 * const k = new Kernel(m);
 * const nvme = k.drivers.find((d) => d instanceof NvmeDriver) as NvmeDriver;
 * ```
 *
 * @module
 */

import type { DeviceInfo, DeviceModel, Machine } from "../machine/mod.ts";
import type { Kernel } from "../boot/kernel.ts";
import type { DeviceName } from "../boot/options.ts";
import { IsaDmaModel } from "./isa/model.ts";
import { NicModel } from "./nic/model.ts";
import { NvmeModel } from "./nvme/model.ts";
import { CaptureModel } from "./dma30/model.ts";
import { IsaDriver } from "./isa/driver.ts";
import { NicDriver } from "./nic/driver.ts";
import { NvmeDriver } from "./nvme/driver.ts";
import { CaptureDriver } from "./dma30/driver.ts";
import type { DeviceDriver } from "./driver.ts";

export {
  type DeviceDriver,
  DriverBase,
  type DriverSpec,
  type DriverStats,
  type TransferResult,
} from "./driver.ts";

/** One row of the device table. */
export interface DeviceEntry {
  /** Name on the command line. */
  readonly name: DeviceName;
  /** Device type the model registers and the driver matches. */
  readonly type: string;
  /** Puts the hardware on `machine` (before the kernel boots). */
  attachModel(machine: Machine): DeviceModel;
  /** Attaches the driver to the device `info` of the kernel's machine. */
  attachDriver(kernel: Kernel, info: DeviceInfo): DeviceDriver;
}

/** The device classes by command-line name. */
export const DEVICE_TABLE: Readonly<Record<DeviceName, DeviceEntry>> = Object.freeze({
  isa: {
    name: "isa",
    type: "isadma",
    attachModel: (m: Machine) => new IsaDmaModel(m),
    attachDriver: (k: Kernel, info: DeviceInfo) => new IsaDriver(k, info),
  },
  nic: {
    name: "nic",
    type: "nic",
    attachModel: (m: Machine) => new NicModel(m),
    attachDriver: (k: Kernel, info: DeviceInfo) => new NicDriver(k, info),
  },
  nvme: {
    name: "nvme",
    type: "nvme",
    attachModel: (m: Machine) => new NvmeModel(m),
    attachDriver: (k: Kernel, info: DeviceInfo) => new NvmeDriver(k, info),
  },
  dma30: {
    name: "dma30",
    type: "dma30",
    attachModel: (m: Machine) => new CaptureModel(m),
    attachDriver: (k: Kernel, info: DeviceInfo) => new CaptureDriver(k, info),
  },
});

/** The table row whose driver matches device type `type`, or undefined. */
export function driverFor(type: string): DeviceEntry | undefined {
  return Object.values(DEVICE_TABLE).find((e) => e.type === type);
}

export { CaptureDriver, IsaDriver, NicDriver, NvmeDriver };
export { CaptureModel, IsaDmaModel, NicModel, NvmeModel };
export { SparseDisk } from "./nvme/model.ts";
export { type IsaCommand } from "./isa/driver.ts";
export { NIC_MTU } from "./nic/driver.ts";
export { NVME_MAX_TRANSFER } from "./nvme/driver.ts";
export { type CaptureFrame } from "./dma30/driver.ts";
