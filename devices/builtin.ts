/**
 * The built-in devices: for each name the command line knows (`isa`, `nic`,
 * `nvme`, `dma30`), how to put its model on a machine, and the registry of
 * their drivers, which register as any driver does.
 *
 * @module
 */

import type { DeviceModel, Machine } from "../machine/mod.ts";
import { DriverRegistry } from "./autoconf.ts";
import { IsaDmaModel } from "./isa/model.ts";
import { NicModel } from "./nic/model.ts";
import { NvmeModel } from "./nvme/model.ts";
import { CaptureModel } from "./dma30/model.ts";
import { IsaDriver } from "./isa/driver.ts";
import { NicDriver } from "./nic/driver.ts";
import { NvmeDriver } from "./nvme/driver.ts";
import { CaptureDriver } from "./dma30/driver.ts";

/** A built-in device's name. */
export type DeviceName = "isa" | "nic" | "nvme" | "dma30";
/** The built-in devices' names, as `--devices` takes them. */
export const DEVICE_NAMES: readonly DeviceName[] = Object.freeze(["isa", "nic", "nvme", "dma30"]);

/** Puts the hardware of each built-in device on a machine (before the kernel boots). */
export const DEVICE_MODELS: Readonly<Record<DeviceName, (m: Machine) => DeviceModel>> = Object
  .freeze({
    isa: (m: Machine) => new IsaDmaModel(m),
    nic: (m: Machine) => new NicModel(m),
    nvme: (m: Machine) => new NvmeModel(m),
    dma30: (m: Machine) => new CaptureModel(m),
  });

/** A fresh registry holding the built-in drivers; add your own to it. */
export function builtinDrivers(): DriverRegistry {
  return new DriverRegistry([
    { name: "isa", type: "isadma", attach: (k, info) => new IsaDriver(k, info) },
    { name: "nic", type: "nic", attach: (k, info) => new NicDriver(k, info) },
    { name: "nvme", type: "nvme", attach: (k, info) => new NvmeDriver(k, info) },
    { name: "dma30", type: "dma30", attach: (k, info) => new CaptureDriver(k, info) },
  ]);
}
