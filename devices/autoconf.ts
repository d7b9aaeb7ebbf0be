/**
 * Autoconfiguration: the registry through which the kernel matches the
 * machine's devices to drivers, as NetBSD's autoconf match/attach or
 * Linux's driver registration.
 *
 * Theory. A {@link DriverRegistry} holds entries, each a driver's name, the
 * device type it matches and its attach function. The kernel's devices
 * stage walks the machine's device table and attaches, for each device, the
 * driver registered for its type; the driver then appears everywhere a
 * driver does (boot log, the kernel's driver list, summary, checks, the
 * fault switch, shutdown). The built-in drivers register the same way
 * ({@link builtinDrivers} in `builtin.ts`). A registry is an object, never
 * module state: each kernel has its own.
 *
 * Invariants: names are unique, and so are types (one driver per device
 * type). Cost: registration and matching O(1).
 *
 * @module
 */

import { describe, KernelError } from "../mm/errors.ts";
import type { DeviceInfo } from "../machine/mod.ts";
import type { DriverKernel } from "./kernel_if.ts";
import type { DeviceDriver } from "./driver.ts";

/** One driver in the registry. */
export interface DriverEntry {
  /** The driver's name ("nvme"). */
  readonly name: string;
  /** The device type it matches ("nvme"). */
  readonly type: string;
  /** Attaches the driver to `device` (throws, leaving nothing behind, when it cannot). */
  attach(kernel: DriverKernel, device: DeviceInfo): DeviceDriver;
}

/** Drivers by name and by the device type they match. */
export class DriverRegistry {
  readonly #byName = new Map<string, DriverEntry>();
  readonly #byType = new Map<string, DriverEntry>();

  /** A registry holding `entries` (registered in order). */
  constructor(entries?: readonly DriverEntry[]) {
    if (entries === undefined) entries = [];
    for (const e of entries) this.register(e);
  }

  /**
   * Adds a driver. Refuses (changing nothing) a malformed entry (EINVAL), a
   * name already taken or a type that already has a driver (EEXIST).
   */
  register(entry: DriverEntry): void {
    if (entry === null || typeof entry !== "object") {
      throw new KernelError("EINVAL", `a driver entry must be an object, got ${describe(entry)}`);
    }
    const { name, type, attach } = entry;
    if (typeof name !== "string" || name === "") {
      throw new KernelError(
        "EINVAL",
        `driver name must be a non-empty string, got ${describe(name)}`,
      );
    }
    if (typeof type !== "string" || type === "") {
      throw new KernelError(
        "EINVAL",
        `driver ${name}: device type must be a non-empty string, got ${describe(type)}`,
      );
    }
    if (typeof attach !== "function") {
      throw new KernelError("EINVAL", `driver ${name}: attach must be a function`);
    }
    if (this.#byName.has(name)) {
      throw new KernelError("EEXIST", `a driver named ${describe(name)} is already registered`);
    }
    const other = this.#byType.get(type);
    if (other !== undefined) {
      throw new KernelError(
        "EEXIST",
        `device type ${describe(type)} already has driver ${describe(other.name)}`,
      );
    }
    const e = Object.freeze({ name, type, attach });
    this.#byName.set(name, e);
    this.#byType.set(type, e);
  }

  /** The driver registered for device type `type`, or undefined. */
  match(type: string): DriverEntry | undefined {
    return this.#byType.get(type);
  }

  /** The driver named `name`, or undefined. */
  get(name: string): DriverEntry | undefined {
    return this.#byName.get(name);
  }

  /** Every entry, in registration order. */
  get entries(): DriverEntry[] {
    return [...this.#byName.values()];
  }
}
