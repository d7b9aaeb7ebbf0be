/**
 * A whole machine: memory map, RAM, MMIO bus, interrupt controller, and the
 * devices attached to them.
 *
 * Theory. {@link createMachine} builds the memory map (a preset or a given
 * one) and backs each of its `ram` regions with a RAM slot. Attaching a
 * device model gives it three things, each its only way to the rest of the
 * machine: a register window on the bus (placed in the MMIO hole), an
 * interrupt line, and a DMA port carrying its constraints. The machine keeps
 * a table of attached devices ({@link Machine.devices}: name, type, window,
 * line, DMA constraints) that plays the firmware's device table for the
 * kernel's autoconfiguration. Attaching is all or nothing: a refused attach
 * leaves the machine as it was. The {@link Clock} runs the work devices
 * queue to complete later, and after each piece the CPU takes the
 * interrupts it raised.
 *
 * A machine may have an {@link Iommu} (`iommu` in the options): its
 * register window is the first one in the MMIO hole, and with `placeAll`
 * (the default) every device attached afterwards is placed behind it, as a
 * DMAR unit whose scope is every device. Its scope is then the kernel's
 * table of which devices it translates.
 *
 * @module
 */

import { checkInt, hex, MachineError } from "./errors.ts";
import { type MemoryMap, type Preset, presetMemoryMap } from "./memmap.ts";
import { Ram } from "./ram.ts";
import { Bus, type MmioHandlers, type MmioWindow } from "./bus.ts";
import { InterruptController, type IrqLine } from "./irq.ts";
import { type DmaConstraints, type DmaLimits, DmaPort } from "./dma.ts";
import { Clock } from "./clock.ts";
import { Iommu, type IommuOptions } from "./iommu.ts";

/** How to build a machine. */
export interface MachineOptions {
  /** Memory-map preset (default `pc`); ignored when `memmap` is given. */
  preset?: Preset;
  /** Bytes of memory for the preset (see {@link presetMemoryMap}). */
  ramSize?: number;
  /** A memory map to use instead of a preset. */
  memmap?: MemoryMap;
  /** RAM chunk size (see {@link Ram}); 64 KiB unless told. */
  chunkSize?: number;
  /** Interrupt lines (default 32). */
  irqLines?: number;
  /** An IOMMU (`true`: with its default options); none unless told. */
  iommu?: boolean | IommuOptions;
}

/** What a device model asks for when it is attached. */
export interface DeviceSpec {
  /** Unique instance name: "isa0", "nic0", ... */
  name: string;
  /** Device class for drivers to match: "isadma", "nic", "nvme", "dma30", ... */
  type: string;
  /** Bytes of register window (default 4096, rounded up to a page). */
  windowSize?: number;
  /** What its DMA engine can address. */
  dma: DmaConstraints;
  /** Its registers. */
  registers: MmioHandlers;
}

/** What a device model gets back: its window, its line and its DMA port. */
export interface Attachment {
  /** The register window on the bus. */
  readonly window: MmioWindow;
  /** The device end of its interrupt line. */
  readonly irq: IrqLine;
  /** Its window into RAM. */
  readonly dma: DmaPort;
}

/** A row of the device table the kernel enumerates. */
export interface DeviceInfo {
  /** Instance name. */
  readonly name: string;
  /** Device class. */
  readonly type: string;
  /** Register window base (bus address). */
  readonly base: number;
  /** Register window size in bytes. */
  readonly size: number;
  /** Interrupt line number. */
  readonly irq: number;
  /** DMA constraints with defaults filled in. */
  readonly dma: DmaLimits;
  /** The device's DMA port (for counters; the kernel never moves data through it). */
  readonly port: DmaPort;
}

/** The hardware a guest kernel boots on. */
export class Machine {
  /** The preset the memory map came from, or "custom". */
  readonly preset: Preset | "custom";
  /** The firmware memory map. */
  readonly memmap: MemoryMap;
  /** Physical RAM: one slot per `ram` region. */
  readonly ram: Ram;
  /** The MMIO bus. */
  readonly bus: Bus;
  /** The interrupt controller. */
  readonly irq: InterruptController;
  /** Virtual time and the device work queued on it; the CPU takes interrupts after each event. */
  readonly clock: Clock;
  /** The IOMMU, or null when the machine has none. */
  readonly iommu: Iommu | null;
  readonly #devices: DeviceInfo[] = [];

  /**
   * Assembles a machine from its parts (an IOMMU is built from `iommu`,
   * its options, when given); see {@link createMachine}.
   */
  constructor(
    preset: Preset | "custom",
    memmap: MemoryMap,
    ram: Ram,
    bus: Bus,
    irq: InterruptController,
    iommu?: IommuOptions | null,
  ) {
    if (iommu === undefined) iommu = null;
    this.preset = preset;
    this.memmap = memmap;
    this.ram = ram;
    this.bus = bus;
    this.irq = irq;
    this.clock = new Clock(() => irq.deliver());
    this.iommu = iommu === null ? null : new Iommu(ram, bus, iommu);
  }

  /** The attached devices, in attach order. */
  get devices(): readonly DeviceInfo[] {
    return this.#devices.slice();
  }

  /** The device named `name`, or `undefined`. */
  device(name: string): DeviceInfo | undefined {
    return this.#devices.find((d) => d.name === name);
  }

  /**
   * Attaches a device model: maps its registers in the MMIO hole, gives it
   * the next interrupt line and a DMA port with its constraints, placed
   * behind the IOMMU when the IOMMU takes every device. Throws (`EINVAL`,
   * `EBUSY`, `ENOSPC`) and changes nothing when it cannot.
   */
  attach(spec: DeviceSpec): Attachment {
    if (spec === null || typeof spec !== "object") {
      throw new MachineError("EINVAL", `device spec must be an object, got ${hex(spec)}`);
    }
    const { name, type } = spec;
    if (typeof name !== "string" || name === "") {
      throw new MachineError("EINVAL", `device name must be a non-empty string, got ${hex(name)}`);
    }
    if (typeof type !== "string" || type === "") {
      throw new MachineError("EINVAL", `device type must be a non-empty string, got ${hex(type)}`);
    }
    if (this.device(name) !== undefined) {
      throw new MachineError("EBUSY", `a device named ${hex(name)} is already attached`);
    }
    const size = Math.ceil(checkInt("windowSize", spec.windowSize ?? 4096, 1, 2 ** 30) / 4096) *
      4096;
    const dma = new DmaPort(this.ram, name, spec.dma);
    const iommu = this.iommu !== null && this.iommu.placeAll ? this.iommu : null;
    if (iommu?.full) throw new MachineError("ENOSPC", `the IOMMU has no source left for ${name}`);
    const base = this.bus.allocate(size);
    const window = this.bus.map(name, base, size, spec.registers);
    let irq: IrqLine;
    try {
      irq = this.irq.allocateLine();
    } catch (e) {
      this.bus.unmap(base);
      throw e;
    }
    iommu?.place(dma);
    this.#devices.push(
      Object.freeze({ name, type, base, size, irq: irq.line, dma: dma.limits, port: dma }),
    );
    return { window, irq, dma };
  }

  /**
   * Checks every part's invariants; `exhaustive` also reads what a check
   * otherwise takes on trust (every RAM table entry, see {@link Ram.check}).
   */
  check(exhaustive?: boolean): void {
    if (exhaustive === undefined) exhaustive = false;
    this.memmap.check();
    this.ram.check(exhaustive);
    this.bus.check();
    this.irq.check();
    this.clock.check();
    this.iommu?.check();
    for (const d of this.#devices) d.port.check();
  }
}

/**
 * Builds a machine: `createMachine()` is a 512 MiB PC, `createMachine({
 * preset: "big" })` a 64 GiB one, `createMachine({ preset: "isa" })` a
 * 16 MiB ISA machine. Throws `EINVAL` naming a bad option.
 *
 * @example A 6 GiB PC: RAM above 4 GiB, costing the host what is touched
 * ```ts
 * import { createMachine } from "./mod.ts";
 *
 * const m = createMachine({ preset: "pc", ramSize: 6 * 2 ** 30 });
 * m.ram.write32(0x1_2000_0000, 0xfeed); // above 4 GiB
 * console.log(m.ram.read32(0x1_2000_0000).toString(16)); // feed
 * ```
 */
export function createMachine(options?: MachineOptions): Machine {
  if (options === undefined) options = {};
  const memmap = options.memmap ?? presetMemoryMap(options.preset ?? "pc", {
    ramSize: options.ramSize,
  });
  const slots = memmap.ofType("ram").map((r) => ({ base: r.base, size: r.size }));
  if (slots.length === 0) throw new MachineError("EINVAL", "the memory map has no RAM");
  const ram = new Ram(slots, { chunkSize: options.chunkSize });
  const bus = new Bus(memmap);
  const irq = new InterruptController(options.irqLines ?? 32);
  const io = options.iommu;
  if (io !== undefined && typeof io !== "boolean" && (io === null || typeof io !== "object")) {
    throw new MachineError("EINVAL", `iommu must be a boolean or IOMMU options, got ${hex(io)}`);
  }
  const iommu = io === undefined || io === false ? null : io === true ? {} : io;
  return new Machine(
    options.memmap ? "custom" : options.preset ?? "pc",
    memmap,
    ram,
    bus,
    irq,
    iommu,
  );
}
