/**
 * What every device model has in common: the first registers of its window
 * and the way it raises its interrupt and reports DMA faults.
 *
 * Theory. A model extends {@link DeviceModel}, which attaches it to the
 * machine (a 4 KiB register window in the MMIO hole, the next interrupt
 * line, a DMA port with the model's constraints) and answers the common
 * registers itself; the model answers the rest through `readReg` and
 * `writeReg`. All registers are 32 bits wide, little-endian, at 4-aligned
 * offsets; reserved offsets read 0 and ignore stores.
 *
 * Common registers (offsets from the window base):
 *
 * | offset | name            | access | meaning                                         |
 * |--------|-----------------|--------|-------------------------------------------------|
 * | 0x00   | ID              | RO     | device identifier (four ASCII bytes)            |
 * | 0x08   | ISR             | R/W1C  | interrupt causes; write 1s to clear them        |
 * | 0x0C   | IER             | R/W    | interrupt enables                               |
 * | 0x40   | FAULT_KIND      | R/W    | last DMA fault: 0 none, 1 decode, 2 access, 3 translation; any store clears it |
 * | 0x44   | FAULT_ADDR_LO   | RO     | its address, low 32 bits                        |
 * | 0x48   | FAULT_ADDR_HI   | RO     | its address, high bits                          |
 * | 0x4C   | FAULT_LEN       | RO     | its length in bytes                             |
 * | 0x50   | FAULT_COUNT     | RO     | DMA faults since attach                         |
 *
 * A model completes a command either inside the register store that starts
 * it (synchronous) or later: {@link DeviceModel.later} queues the work on
 * the machine's clock, counted on the port as in flight until it runs, and
 * the work raises the interrupt when it is done. A model built with
 * `synchronous: true` runs what it would queue at once, for microbenchmarks
 * and for tests that step a model by hand. A reset drops work queued before it.
 *
 * ISR bit 0 (`INT_DONE`) means a command or transfer completed, bit 1
 * (`INT_ERROR`) that one failed (a DMA fault, or a refused programming the
 * model names in its own status register); models add their own bits above.
 * The interrupt line is asserted exactly while `ISR & IER` is non-zero, so
 * a handler acknowledges by writing the bits it handled back to ISR.
 *
 * @module
 */

import { fourcc, TWO32 } from "./bits.ts";
import { hex } from "./errors.ts";
import type { DmaConstraints, DmaPort } from "./dma.ts";
import type { IrqLine } from "./irq.ts";
import type { Clock } from "./clock.ts";
import type { Machine } from "./machine.ts";
import type { MmioHandlers } from "./bus.ts";

/** Offset of the identifier register. */
export const REG_ID = 0x00;
/** Offset of the interrupt status register (write 1 to clear). */
export const REG_ISR = 0x08;
/** Offset of the interrupt enable register. */
export const REG_IER = 0x0c;
/** Offset of the last fault's kind (0 none, 1 decode, 2 access, 3 translation); a store clears the fault. */
export const REG_FAULT_KIND = 0x40;
/** Offset of the last fault's address, low 32 bits. */
export const REG_FAULT_ADDR_LO = 0x44;
/** Offset of the last fault's address, high bits. */
export const REG_FAULT_ADDR_HI = 0x48;
/** Offset of the last fault's length. */
export const REG_FAULT_LEN = 0x4c;
/** Offset of the number of DMA faults since attach. */
export const REG_FAULT_COUNT = 0x50;

/** ISR/IER bit: a command or transfer completed. */
export const INT_DONE = 1 << 0;
/** ISR/IER bit: a command or transfer failed. */
export const INT_ERROR = 1 << 1;

/** FAULT_KIND value: no fault recorded (or cleared). */
export const FAULT_NONE = 0;
/** FAULT_KIND value: the address was not RAM. */
export const FAULT_DECODE = 1;
/** FAULT_KIND value: a DMA constraint or the device protocol was broken. */
export const FAULT_ACCESS = 2;
/** FAULT_KIND value: the IOMMU the device sits behind refused to translate the address. */
export const FAULT_TRANSLATION = 3;

/** Bytes of every device register window. */
export const DEVICE_WINDOW = 4096;

/** 2^32: the weight of the high word of a 64-bit register pair. */
export { TWO32 };

/** How a model introduces itself to {@link DeviceModel}. */
export interface DeviceModelSpec {
  /** Instance name ("nic0"). */
  name: string;
  /** Device class ("nic"). */
  type: string;
  /** Value of the ID register. */
  id: number;
  /** What its DMA engine can address. */
  dma: DmaConstraints;
  /** Complete work inside the store that starts it instead of later (default false). */
  synchronous?: boolean;
}

/** Turns four ASCII characters into an ID register value (first character in the low byte). */
export { fourcc };

/** Base of the device models: attachment, common registers, interrupt and fault reporting. */
export abstract class DeviceModel implements MmioHandlers {
  /** Instance name. */
  readonly name: string;
  /** Device class. */
  readonly type: string;
  /** Register window base on the bus. */
  readonly base: number;
  /** Its interrupt line. */
  readonly irq: IrqLine;
  /** Its DMA port. */
  readonly dma: DmaPort;
  /** Value of the ID register. */
  readonly id: number;
  /** True when work completes inside the store that starts it. */
  readonly synchronous: boolean;
  /** The machine's clock, on which {@link later} queues work. */
  readonly clock: Clock;
  /** Interrupt causes (ISR). */
  protected isr = 0;
  /** Interrupt enables (IER). */
  protected ier = 0;
  #faultShown = 0; // port fault count when FAULT_KIND was last cleared
  #generation = 0; // resets so far: work queued before the last one is dropped

  /** Attaches the model to `machine` (throws as {@link Machine.attach} does). */
  constructor(machine: Machine, spec: DeviceModelSpec) {
    const a = machine.attach({
      name: spec.name,
      type: spec.type,
      windowSize: DEVICE_WINDOW,
      dma: spec.dma,
      registers: this,
    });
    this.name = spec.name;
    this.type = spec.type;
    this.id = spec.id >>> 0;
    this.base = a.window.base;
    this.irq = a.irq;
    this.dma = a.dma;
    this.clock = machine.clock;
    this.synchronous = spec.synchronous ?? false;
  }

  /**
   * Runs `work` `delay` virtual nanoseconds from now (at once when the model
   * is synchronous); until it runs it counts as a transfer in flight on the
   * port.
   */
  protected later(delay: number, work: () => void): void {
    if (this.synchronous) {
      work();
      return;
    }
    const port = this.dma, generation = this.#generation;
    port.inFlight++;
    this.clock.schedule(delay, () => {
      port.inFlight--;
      // A reset since the work was queued dropped it.
      if (generation === this.#generation) work();
    });
  }

  /** A model register load (offsets past the common block). */
  protected abstract readReg(offset: number): number;
  /** A model register store (offsets past the common block). */
  protected abstract writeReg(offset: number, value: number): void;

  /** Bus entry point: a 32-bit register load. */
  read32(offset: number): number {
    switch (offset) {
      case REG_ID:
        return this.id;
      case REG_ISR:
        return this.isr >>> 0;
      case REG_IER:
        return this.ier >>> 0;
      case REG_FAULT_KIND:
      case REG_FAULT_ADDR_LO:
      case REG_FAULT_ADDR_HI:
      case REG_FAULT_LEN:
        return this.#faultReg(offset);
      case REG_FAULT_COUNT:
        return this.dma.faults >>> 0;
      default:
        return this.readReg(offset) >>> 0;
    }
  }

  /** Bus entry point: a 32-bit register store. */
  write32(offset: number, value: number): void {
    switch (offset) {
      case REG_ID:
      case REG_FAULT_ADDR_LO:
      case REG_FAULT_ADDR_HI:
      case REG_FAULT_LEN:
      case REG_FAULT_COUNT:
        return;
      case REG_ISR:
        this.isr = (this.isr & ~value) >>> 0;
        this.updateLine();
        return;
      case REG_IER:
        this.ier = value >>> 0;
        this.updateLine();
        return;
      case REG_FAULT_KIND:
        this.#faultShown = this.dma.faults;
        return;
      default:
        this.writeReg(offset, value >>> 0);
    }
  }

  /** Sets ISR bits and updates the line. */
  protected interrupt(bits: number): void {
    this.isr = (this.isr | bits) >>> 0;
    this.updateLine();
  }

  /** Drives the line to `(ISR & IER) != 0`. */
  protected updateLine(): void {
    this.irq.set((this.isr & this.ier) !== 0);
  }

  /** Clears ISR, IER and the shown fault, and drops queued work (for a model's reset). */
  protected resetCommon(): void {
    this.#generation++;
    this.isr = 0;
    this.ier = 0;
    this.#faultShown = this.dma.faults;
    this.updateLine();
  }

  /** A one-line description for logs: name, type, window, line. */
  describe(): string {
    return `${this.name} (${this.type}) at ${hex(this.base)} irq ${this.irq.line}`;
  }

  #faultReg(offset: number): number {
    const f = this.dma.lastFault;
    if (f === null || this.dma.faults === this.#faultShown) return 0;
    switch (offset) {
      case REG_FAULT_KIND:
        return f.kind === "decode"
          ? FAULT_DECODE
          : f.kind === "translation"
          ? FAULT_TRANSLATION
          : FAULT_ACCESS;
      case REG_FAULT_ADDR_LO:
        return Number.isInteger(f.addr) && f.addr >= 0 ? f.addr % TWO32 : 0;
      case REG_FAULT_ADDR_HI:
        return Number.isInteger(f.addr) && f.addr >= 0 ? Math.floor(f.addr / TWO32) % TWO32 : 0;
      default:
        return Number.isInteger(f.len) && f.len >= 0 ? Math.min(f.len, 0xffffffff) : 0;
    }
  }
}

/** FNV-1a offset basis: the hash of no bytes. */
export const FNV1A_INIT = 0x811c9dc5;

/**
 * The 32-bit FNV-1a hash of `bytes[offset .. offset + length)`, continuing
 * from `hash` (start with {@link FNV1A_INIT}). Models that consume data
 * report it in a CHECKSUM register so that a driver can verify the bytes.
 */
export function fnv1a(
  bytes: Uint8Array,
  offset?: number,
  length?: number,
  hash?: number,
): number {
  if (offset === undefined) offset = 0;
  if (length === undefined) length = bytes.length - offset;
  if (hash === undefined) hash = FNV1A_INIT;
  let h = hash >>> 0;
  for (let i = offset, end = offset + length; i < end; i++) {
    h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  }
  return h;
}
