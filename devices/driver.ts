/**
 * What every kernel driver of this machine's devices shares: the driver
 * contract the kernel sees ({@link DeviceDriver}, {@link DriverStats},
 * {@link TransferResult}) and {@link DriverBase}, the part of a driver that
 * does not depend on its device.
 *
 * Theory. Every device model answers the same common registers in its
 * window (ID, IER, ISR and the fault registers: FAULT_COUNT, FAULT_KIND,
 * FAULT_ADDR, FAULT_LEN), so the steps that touch only those are one piece
 * of code: matching the device type and ID at attach; building the bus_dma
 * tag from the device's DMA constraints, or a permissive one when the
 * kernel ignores tags; the interrupt handler, which reads the causes from
 * ISR and acknowledges them; the command step (store the value that starts
 * the device, which completes inside the store and raises its line, then
 * let the interrupt controller deliver and return the causes the handler
 * took); reading a DMA fault the device recorded (counting the faults that
 * FAULT_COUNT gained since the driver last looked, describing the shown one
 * in `lastFault` and clearing it); counting and logging errors (the first
 * few of each are logged, all are counted); register access at the window
 * base through the machine's bus; the counters; and detach's bookkeeping
 * (idempotent, handler removed between stopping the device and giving back
 * its memory). A subclass keeps what is its device's own: its registers,
 * maps, rings and buffers, and how it checks the data it moved.
 *
 * Invariants: the counters are non-negative integers; FAULT_COUNT's value
 * at the last look is kept so that a fault is counted once however often
 * the registers are read; after detach the driver refuses work (ENXIO).
 * Cost: each step is O(1) bus accesses; nothing here allocates after attach.
 *
 * @module
 */

import type { Kernel } from "../boot/kernel.ts";
import { DmaTag } from "../mm/bus_dma.ts";
import { describe, KernelError } from "../mm/errors.ts";
import {
  type DeviceInfo,
  type DmaConstraints,
  FAULT_DECODE,
  FAULT_NONE,
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
} from "../machine/mod.ts";

/**
 * What one transfer came to: `ok` (moved and checked), `fault` (the device
 * reported a DMA fault; nothing moved), `mismatch` (moved, but the data the
 * driver checked is wrong), `error` (the device failed otherwise, or the
 * driver could not program what it was given).
 */
export type TransferResult = "ok" | "fault" | "mismatch" | "error";

/** A driver's counters since attach. */
export interface DriverStats {
  /** Transfers the device completed. */
  transfers: number;
  /** Bytes those transfers moved. */
  bytes: number;
  /** Of those, bytes that went through bounce pages or a bounce buffer. */
  bouncedBytes: number;
  /** DMA faults the device reported (its FAULT_COUNT register). */
  faults: number;
  /** Transfers whose data the driver found wrong. */
  mismatches: number;
  /** Other failures: error statuses, missing interrupts, unprogrammable addresses. */
  errors: number;
}

/** What the kernel sees of any driver. */
export interface DeviceDriver {
  /** Instance name of the device ("nic0"). */
  readonly name: string;
  /** Device type it drives ("nic"). */
  readonly type: string;
  /** The DMA tag its transfers obey (permissive when tags are ignored). */
  readonly tag: DmaTag;
  /** True when the driver uses a permissive tag instead of its device's. */
  readonly ignoreTags: boolean;
  /** The last fault the device described, in words, or null. */
  readonly lastFault: string | null;
  /** True once {@link DeviceDriver.detach} ran. */
  readonly detached: boolean;
  /** A copy of its counters. */
  stats(): DriverStats;
  /** Verifies its invariants (maps unloaded between transfers, rings in range, counters sane). */
  check(): void;
  /**
   * Stops the device, removes the interrupt handler and gives back every
   * map, DMA memory and kernel buffer the driver holds. Idempotent.
   */
  detach(): void;
}

/** What a driver class tells {@link DriverBase} about its device. */
export interface DriverSpec {
  /** Device type the driver matches ("nvme"). */
  readonly type: string;
  /** Article before the type in the refusal of another device ("an" for "an nvme"). */
  readonly article: "a" | "an";
  /** Value the device's ID register must hold. */
  readonly id: number;
  /** The device's DMA constraints, from which the tag is built. */
  readonly dma: Readonly<DmaConstraints>;
  /** Largest transfer of the device's tag. */
  readonly maxSize: number;
  /** Largest transfer of the permissive tag used when tags are ignored (default `maxSize`). */
  readonly ignoredMaxSize?: number;
}

/** 2^32: where an address stops fitting a 32-bit register. */
export const TWO32 = 4294967296;

/** Errors and faults logged per driver; the rest are only counted. */
const FAULTS_LOGGED = 4;

/**
 * The device-independent part of a driver: attach checks and the tag,
 * register access, the interrupt handler and command step, fault and error
 * accounting, the counters and detach's bookkeeping.
 */
export abstract class DriverBase implements DeviceDriver {
  /** Device instance name. */
  readonly name: string;
  /** Device type. */
  readonly type: string;
  /** The tag its transfers obey. */
  readonly tag: DmaTag;
  /** True when the tag is the permissive one. */
  readonly ignoreTags: boolean;
  /** The last fault the device described. */
  lastFault: string | null = null;

  /** The kernel the driver is attached in. */
  protected readonly kernel: Kernel;
  /** The counters {@link stats} copies; the subclass counts transfers, bytes and mismatches. */
  protected readonly counters: DriverStats = {
    transfers: 0,
    bytes: 0,
    bouncedBytes: 0,
    faults: 0,
    mismatches: 0,
    errors: 0,
  };

  readonly #base: number;
  readonly #line: number;
  #isr = 0;
  #faultsSeen = 0;
  #detached = false;

  /**
   * Checks that `info` is a device of `spec.type` answering `spec.id`
   * (ENODEV otherwise) and builds the tag; touches nothing else of the
   * device.
   */
  protected constructor(kernel: Kernel, info: DeviceInfo, spec: DriverSpec) {
    if (info.type !== spec.type) {
      throw new KernelError(
        "ENODEV",
        `device ${info.name} is a ${info.type}, not ${spec.article} ${spec.type}`,
      );
    }
    this.type = spec.type;
    this.kernel = kernel;
    this.name = info.name;
    this.#base = info.base;
    this.#line = info.irq;
    const id = this.rd(REG_ID);
    if (id !== spec.id) {
      throw new KernelError("ENODEV", `device ${info.name} answers ID ${describe(id)}`);
    }
    this.ignoreTags = kernel.ignoreTags;
    const dma = spec.dma;
    this.tag = this.ignoreTags
      ? new DmaTag(`${info.name} (tag ignored)`, { maxSize: spec.ignoredMaxSize ?? spec.maxSize })
      : new DmaTag(info.name, {
        highAddr: dma.maxAddress,
        alignment: dma.alignment,
        boundary: dma.boundary,
        nSegments: dma.maxSegments,
        maxSegSize: dma.maxSegmentSize,
        maxSize: spec.maxSize,
      });
  }

  /** True once detached. */
  get detached(): boolean {
    return this.#detached;
  }

  /** A copy of the counters. */
  stats(): DriverStats {
    return { ...this.counters };
  }

  /** Verifies the driver's invariants. */
  abstract check(): void;

  /**
   * Stops the device ({@link quiesce}), removes the interrupt handler and
   * gives back what the driver holds ({@link release}). Idempotent.
   */
  detach(): void {
    if (this.#detached) return;
    this.quiesce();
    this.kernel.machine.irq.disestablish(this.#line);
    this.release();
    this.#detached = true;
  }

  /** Stops the device at detach, before the handler is removed. */
  protected abstract quiesce(): void;

  /** Gives back the maps and memory the driver holds, at detach. */
  protected abstract release(): void;

  /** Throws ENXIO once the driver is detached. */
  protected assertAttached(): void {
    if (this.#detached) throw new KernelError("ENXIO", `${this.name} is detached`);
  }

  /** Throws, naming `who`, when a counter is not a non-negative integer. */
  protected checkCounters(who: string): void {
    for (const [k, v] of Object.entries(this.counters)) {
      if (!Number.isInteger(v) || v < 0) {
        throw new KernelError("CORRUPT", `${who}.check: ${k} is ${v}`);
      }
    }
  }

  /** Puts the interrupt handler on the device's line. */
  protected establish(): void {
    this.kernel.machine.irq.establish(this.#line, this.#intr);
  }

  /** Enables the interrupt causes `mask` and takes FAULT_COUNT as the count already seen. */
  protected enableInterrupts(mask: number = INT_DONE | INT_ERROR): void {
    this.wr(REG_IER, mask);
    this.takeFaultCount();
  }

  /** Takes FAULT_COUNT as the count already seen (faults before it are not this driver's). */
  protected takeFaultCount(): void {
    this.#faultsSeen = this.rd(REG_FAULT_COUNT);
  }

  /**
   * Stores `value` at register `off` (the store that starts the device) and
   * returns the interrupt causes the handler then took.
   */
  protected storeAndDeliver(off: number, value: number): number {
    this.#isr = 0;
    this.wr(off, value);
    // The device finished inside the store and raised its line; this is
    // the interrupt arriving: the controller calls the handler below.
    this.kernel.machine.irq.deliver();
    return this.#isr;
  }

  /**
   * Reads the fault registers after an error, describes and clears the
   * shown fault, counts what FAULT_COUNT gained and logs the first few.
   * Returns how many faults it counted.
   */
  protected noteFault(): number {
    const count = this.rd(REG_FAULT_COUNT);
    const kind = this.rd(REG_FAULT_KIND);
    if (kind !== FAULT_NONE) {
      const addr = this.rd64(REG_FAULT_ADDR_LO, REG_FAULT_ADDR_HI);
      this.lastFault = `${kind === FAULT_DECODE ? "decode" : "access"} fault at 0x${
        addr.toString(16)
      } (${this.rd(REG_FAULT_LEN)} bytes)`;
      this.wr(REG_FAULT_KIND, 0);
    }
    const s = this.counters, seen = s.faults;
    s.faults += (count - this.#faultsSeen) >>> 0;
    this.#faultsSeen = count;
    if (seen < FAULTS_LOGGED && s.faults > seen) {
      this.kernel.log(`${this.name}: DMA ${this.lastFault ?? "fault"}`);
    }
    return s.faults - seen;
  }

  /** Counts an error; logs it when it is one of the first few. */
  protected error(what: string): void {
    if (this.counters.errors++ < FAULTS_LOGGED) this.kernel.log(`${this.name}: ${what}`);
  }

  /** Reads the 32-bit register at `off`. */
  protected rd(off: number): number {
    return this.kernel.machine.bus.read32(this.#base + off);
  }

  /** Writes `v` to the 32-bit register at `off`. */
  protected wr(off: number, v: number): void {
    this.kernel.machine.bus.write32(this.#base + off, v);
  }

  /** Reads a 64-bit value from the register pair `lo`, `hi` (high word first). */
  protected rd64(lo: number, hi: number): number {
    return this.rd(hi) * TWO32 + this.rd(lo);
  }

  /** Writes `v` to the register pair `lo`, `hi` (low word first). */
  protected wr64(lo: number, hi: number, v: number): void {
    const h = Math.floor(v / TWO32);
    this.wr(lo, v - h * TWO32);
    this.wr(hi, h);
  }

  /** The interrupt handler: take the causes, acknowledge them. */
  readonly #intr = (): void => {
    const isr = this.rd(REG_ISR);
    this.#isr |= isr;
    this.wr(REG_ISR, isr);
  };
}
