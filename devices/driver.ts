/**
 * What every kernel driver of this machine's devices shares: the driver
 * contract the kernel sees ({@link DeviceDriver}, {@link DriverStats},
 * {@link TransferResult}) and {@link DriverBase}, the part of a driver that
 * does not depend on its device.
 *
 * Theory. Every device model answers the same common registers in its
 * window (ID, IER, ISR and the fault registers: FAULT_COUNT, FAULT_KIND,
 * FAULT_ADDR, FAULT_LEN), so the steps that touch only those are one piece
 * of code, written against the narrow {@link DriverKernel}:
 *
 * - attach: match the device type and ID; make the bus_dma tag from the
 *   device's own limits in one call, narrowed by the driver (or a
 *   permissive tag when the kernel ignores tags).
 * - resources: the tags, maps and DMA memory a driver makes through
 *   {@link DriverBase.makeTag}, {@link DriverBase.createMap} and
 *   {@link DriverBase.allocMemory} are remembered and given back by
 *   detach (a loaded map is unloaded first), so a driver cannot forget one.
 * - completion: a command stores the value that starts the device and
 *   waits for the interrupt causes it wants. The handler reads ISR,
 *   acknowledges it and wakes the waiter; a device that completes inside
 *   the store is served by taking interrupts at once, one that completes
 *   later by the machine's clock, and a timeout on that clock ends a wait
 *   for a device that never answers. Operations run one at a time
 *   ({@link DriverBase.serialize}).
 * - faults: after an error the fault registers are read, the shown fault is
 *   described in `lastFault` and cleared, and what FAULT_COUNT gained since
 *   the driver last looked is counted; errors are counted and the first few
 *   logged.
 * - breaches: before it starts a transfer, a driver tells whether what it
 *   programs breaks the device's own limits, or, behind an IOMMU, names
 *   addresses the device's domain does not map ({@link DriverBase.breach}),
 *   which happens only when tags are ignored; {@link DriverBase.account}
 *   then counts the breaches and those the device caught with a fault. A
 *   breach that ended any other way went unnoticed; a fault without a
 *   breach was unexpected.
 * - syncs go through {@link DriverBase.sync}, which the deliberate bug
 *   `skip-sync` turns off.
 *
 * Invariants: the counters are non-negative integers, caught <= breaches;
 * FAULT_COUNT's value at the last look is kept so that a fault is counted
 * once however often the registers are read; after detach the driver
 * refuses work (ENXIO) and holds nothing. Cost: each step is O(1) bus
 * accesses; a wait allocates its promise.
 *
 * @module
 */

import {
  BUS_DMA_WAITOK,
  type BusDma,
  type DmaMap,
  type DmaMemory,
  type DmaSource,
  type DmaTag,
  type DmaTagOptions,
} from "../mm/bus_dma.ts";
import { describe, KernelError } from "../mm/errors.ts";
import {
  type DeviceInfo,
  type DmaConstraints,
  type DmaLimits,
  FAULT_DECODE,
  FAULT_NONE,
  FAULT_TRANSLATION,
  INT_DONE,
  INT_ERROR,
  listProblem,
  REG_FAULT_ADDR_HI,
  REG_FAULT_ADDR_LO,
  REG_FAULT_COUNT,
  REG_FAULT_KIND,
  REG_FAULT_LEN,
  REG_ID,
  REG_IER,
  REG_ISR,
  TWO32,
} from "../machine/mod.ts";
import type { DriverKernel } from "./kernel_if.ts";

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
  /** Of those, bytes that went through bounce pages. */
  bouncedBytes: number;
  /** DMA faults the device reported (its FAULT_COUNT register). */
  faults: number;
  /** Transfers whose data the driver found wrong. */
  mismatches: number;
  /** Other failures: error statuses, missing interrupts, unprogrammable layouts. */
  errors: number;
  /** Transfers programmed outside the device's own limits (only with tags ignored). */
  breaches: number;
  /** Of those, the ones the device refused with a DMA fault. */
  caught: number;
  /** Faults on transfers that were within the device's limits. */
  unexpectedFaults: number;
}

/** What the kernel sees of any driver. */
export interface DeviceDriver {
  /** Instance name of the device ("nic0"). */
  readonly name: string;
  /** Device type it drives ("nic"). */
  readonly type: string;
  /** The DMA tag its transfers obey (permissive when tags are ignored). */
  readonly tag: DmaTag;
  /** The device's own DMA limits (from its port). */
  readonly limits: DmaLimits;
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
   * map, DMA memory and tag the driver holds. Idempotent.
   */
  detach(): void;
}

/** What a driver class tells {@link DriverBase} about its device. */
export interface DriverSpec {
  /** Device type the driver matches ("nvme"). */
  readonly type: string;
  /** Value the device's ID register must hold. */
  readonly id: number;
  /** How the driver narrows the device's limits for its tag (e.g. a shorter `maxTransfer`). */
  readonly narrow?: DmaConstraints;
  /** Longest transfer of the permissive tag used when tags are ignored (default the tag's). */
  readonly ignoredMaxTransfer?: number;
  /** Bounce pages the tag reserves (default: bus_dma's choice). */
  readonly bouncePages?: number;
}

/** How long a driver waits for a completion interrupt: one virtual second. */
export const COMPLETION_TIMEOUT = 1e9;

/** Errors and faults logged per driver; the rest are only counted. */
const FAULTS_LOGGED = 4;

/**
 * The device-independent part of a driver: attach checks and the tag,
 * tracked resources, register access, the interrupt handler and completion
 * waits, fault, breach and error accounting, the counters and detach.
 */
export abstract class DriverBase implements DeviceDriver {
  /** Device instance name. */
  readonly name: string;
  /** Device type. */
  readonly type: string;
  /** The tag its transfers obey. */
  readonly tag: DmaTag;
  /** The device's own limits. */
  readonly limits: DmaLimits;
  /** True when the tag is the permissive one. */
  readonly ignoreTags: boolean;
  /** The last fault the device described. */
  lastFault: string | null = null;

  /** The kernel the driver is attached in. */
  protected readonly kernel: DriverKernel;
  /** bus_dma, for short. */
  protected readonly busDma: BusDma;
  /** The counters {@link stats} copies; the subclass counts transfers, bytes and mismatches. */
  protected readonly counters: DriverStats = {
    transfers: 0,
    bytes: 0,
    bouncedBytes: 0,
    faults: 0,
    mismatches: 0,
    errors: 0,
    breaches: 0,
    caught: 0,
    unexpectedFaults: 0,
  };

  readonly #base: number;
  readonly #line: number;
  readonly #tags: DmaTag[] = [];
  readonly #maps: DmaMap[] = [];
  readonly #memory = new Set<DmaMemory>();
  #established = false;
  #isr = 0;
  #want = 0;
  #wake: ((isr: number) => void) | null = null;
  #timer = 0;
  #faultsSeen = 0;
  #detached = false;
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * Checks that `info` is a device of `spec.type` answering `spec.id`
   * (ENODEV otherwise) and makes the tag from the device's limits; touches
   * nothing else of the device.
   */
  protected constructor(kernel: DriverKernel, info: DeviceInfo, spec: DriverSpec) {
    if (info === null || typeof info !== "object" || typeof info.name !== "string") {
      throw new KernelError("EINVAL", `device must be a device table row, got ${describe(info)}`);
    }
    if (info.type !== spec.type) {
      throw new KernelError(
        "ENODEV",
        `device ${info.name} is of type ${describe(info.type)}, not ${describe(spec.type)}`,
      );
    }
    this.type = spec.type;
    this.kernel = kernel;
    this.busDma = kernel.busDma;
    this.name = info.name;
    this.limits = info.dma;
    this.#base = info.base;
    this.#line = info.irq;
    const id = this.rd(REG_ID);
    if (id !== spec.id) {
      throw new KernelError("ENODEV", `device ${info.name} answers ID ${describe(id)}`);
    }
    this.ignoreTags = kernel.ignoreTags;
    this.tag = this.ignoreTags
      ? this.busDma.createTag(`${info.name} (tag ignored)`, {
        maxTransfer: spec.ignoredMaxTransfer ?? spec.narrow?.maxTransfer ?? info.dma.maxTransfer,
      }, { device: info.name, bouncePages: 0 })
      : this.busDma.tagForDevice(info, spec.narrow ?? {}, { bouncePages: spec.bouncePages });
    this.#tags.push(this.tag);
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
   * gives back what the driver holds: {@link release} first, then every
   * tracked map (unloaded if loaded), DMA memory and tag. Idempotent.
   */
  detach(): void {
    if (this.#detached) return;
    this.quiesce();
    if (this.#established) this.kernel.irq.disestablish(this.#line);
    this.#established = false;
    this.#endWait();
    this.release();
    this.#releaseAll();
    this.#detached = true;
  }

  /** Stops the device at detach, before the handler is removed. */
  protected abstract quiesce(): void;

  /** Gives back what the driver holds beyond its tracked resources (default: nothing). */
  protected release(): void {}

  /** Throws ENXIO once the driver is detached. */
  protected assertAttached(): void {
    if (this.#detached) throw new KernelError("ENXIO", `${this.name} is detached`);
  }

  /**
   * For a subclass constructor that fails half-way: gives back what was
   * taken (handler, maps, memory, tags) and rethrows `e`.
   */
  protected abandon(e: unknown): never {
    if (this.#established) this.kernel.irq.disestablish(this.#line);
    this.#established = false;
    this.#releaseAll();
    throw e;
  }

  /** Throws, naming `who`, when a counter is not a non-negative integer. */
  protected checkCounters(who: string): void {
    for (const [k, v] of Object.entries(this.counters)) {
      if (!Number.isInteger(v) || v < 0) {
        throw new KernelError("CORRUPT", `${who}.check: ${k} is ${v}`);
      }
    }
    if (this.counters.caught > this.counters.breaches) {
      throw new KernelError("CORRUPT", `${who}.check: more breaches caught than made`);
    }
    for (const map of this.#maps) {
      if (map.destroyed) {
        throw new KernelError("CORRUPT", `${who}.check: map ${map.name} destroyed`);
      }
    }
  }

  /**
   * A further tag for this device: a child of {@link tag} narrowed by
   * `narrowing` (a permissive tag when tags are ignored); given back at
   * detach.
   */
  protected makeTag(
    name: string,
    narrowing: DmaConstraints,
    opts: Pick<DmaTagOptions, "bouncePages"> = {},
  ): DmaTag {
    const tag = this.ignoreTags
      ? this.busDma.createTag(`${name} (tag ignored)`, {}, { device: this.name, bouncePages: 0 })
      : this.busDma.createTag(name, narrowing, { parent: this.tag, bouncePages: opts.bouncePages });
    this.#tags.push(tag);
    return tag;
  }

  /** bus_dmamap_create, remembered for detach. */
  protected createMap(
    tag: DmaTag,
    size?: number,
    nsegs?: number,
    opts?: { bounceBuffer?: boolean; name?: string },
  ): DmaMap {
    const map = this.busDma.createMap(tag, size, nsegs, opts);
    this.#maps.push(map);
    return map;
  }

  /** bus_dmamem_alloc, remembered for detach. */
  protected allocMemory(
    tag: DmaTag,
    size: number,
    opts?: { alignment?: number; boundary?: number; nsegs?: number },
  ): DmaMemory {
    const mem = this.busDma.dmamemAlloc(tag, size, opts);
    this.#memory.add(mem);
    return mem;
  }

  /** Frees DMA memory from {@link allocMemory}; BADFREE for anything else. */
  protected freeMemory(mem: DmaMemory): void {
    if (!this.#memory.has(mem)) {
      throw new KernelError(
        "BADFREE",
        `DMA memory at kva ${describe(mem?.kva)} is not ${this.name}'s`,
      );
    }
    this.busDma.dmamemFree(mem);
    this.#memory.delete(mem);
  }

  /** True when `mem` came from {@link allocMemory} and is not freed. */
  protected ownsMemory(mem: DmaMemory): boolean {
    return this.#memory.has(mem);
  }

  /** Loads `map` from `source`, waiting for bounce space if need be. */
  protected load(map: DmaMap, source: DmaSource): Promise<void> {
    return this.busDma.loadAsync(map, source, BUS_DMA_WAITOK);
  }

  /** bus_dmamap_sync, unless the deliberate bug `skip-sync` is on. */
  protected sync(map: DmaMap, ops: number, offset?: number, len?: number): void {
    if (this.kernel.driverBugs.has("skip-sync")) return;
    this.busDma.sync(map, ops, offset, len);
  }

  /** Puts the interrupt handler on the device's line. */
  protected establish(): void {
    this.kernel.irq.establish(this.#line, this.#intr, this.name);
    this.#established = true;
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

  /** Runs `fn` after every operation started before it has ended. */
  protected serialize<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(fn);
    this.#queue = p.catch(() => {});
    return p;
  }

  /**
   * Stores `value` at register `off` (the store that starts the device),
   * then waits until an interrupt brings a cause in `mask`; resolves with
   * the causes taken since the store (without `mask`'s bits after a timeout).
   */
  protected command(
    off: number,
    value: number,
    mask: number = INT_DONE | INT_ERROR,
  ): Promise<number> {
    this.start(off, value);
    return this.waitFor(mask);
  }

  /** Forgets the causes taken so far and stores `value` at `off` (see {@link waitFor}). */
  protected start(off: number, value: number): void {
    this.#isr = 0;
    this.wr(off, value);
  }

  /**
   * Waits until the causes taken since the last {@link command} include one
   * of `mask` (at once when they do); resolves with them, or after
   * `timeout` virtual nanoseconds with what there is.
   */
  protected waitFor(mask: number, timeout: number = COMPLETION_TIMEOUT): Promise<number> {
    this.kernel.interruptWindow();
    if ((this.#isr & mask) !== 0) return Promise.resolve(this.#isr);
    if (this.#wake !== null) {
      throw new KernelError("EBUSY", `${this.name}: a wait is already in progress`);
    }
    return new Promise((resolve) => {
      this.#want = mask;
      this.#wake = resolve;
      this.#timer = this.kernel.clock.schedule(timeout, () => {
        if (this.#wake !== resolve) return;
        this.#wake = null;
        resolve(this.#isr);
      });
    });
  }

  /**
   * True when the `nsegs` segments of `segs` break the device's own limits,
   * or, when the device is behind an IOMMU, reach pages its domain does not
   * map (what a driver that ignored its tag programs).
   */
  protected breach(segs: ArrayLike<number>, nsegs: number): boolean {
    return listProblem(this.limits, segs, nsegs) !== null ||
      !this.busDma.mappedFor(this.name, segs, nsegs);
  }

  /**
   * Counts what a transfer that reached the device came to: a breach the
   * device caught (a fault), one it did not, or a fault without a breach.
   * Returns `result`.
   */
  protected account(result: TransferResult, breach: boolean): TransferResult {
    const s = this.counters;
    if (breach) {
      s.breaches++;
      if (result === "fault") s.caught++;
      else if (s.breaches - s.caught <= FAULTS_LOGGED) {
        this.kernel.log(`${this.name}: a transfer beyond the device's limits ended ${result}`);
      }
    } else if (result === "fault") s.unexpectedFaults++;
    return result;
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
      const what = kind === FAULT_DECODE
        ? "decode"
        : kind === FAULT_TRANSLATION
        ? "translation"
        : "access";
      this.lastFault = `${what} fault at 0x${addr.toString(16)} (${this.rd(REG_FAULT_LEN)} bytes)`;
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
    return this.kernel.bus.read32(this.#base + off);
  }

  /** Writes `v` to the 32-bit register at `off`. */
  protected wr(off: number, v: number): void {
    this.kernel.bus.write32(this.#base + off, v);
  }

  /** Reads a 64-bit value from the register pair `lo`, `hi` (high word first). */
  protected rd64(lo: number, hi: number): number {
    return this.rd(hi) * TWO32 + this.rd(lo);
  }

  /** Writes `v` (an address) to the register pair `lo`, `hi`, low word first. */
  protected wr64(lo: number, hi: number, v: number): void {
    const h = Math.floor(v / TWO32);
    this.wr(lo, v - h * TWO32);
    this.wr(hi, h);
  }

  #releaseAll(): void {
    const bd = this.busDma;
    for (const map of this.#maps.splice(0)) {
      if (map.destroyed) continue;
      if (map.mapsize !== 0) bd.unload(map);
      bd.destroyMap(map);
    }
    for (const mem of this.#memory) bd.dmamemFree(mem);
    this.#memory.clear();
    for (const tag of this.#tags.splice(0).reverse()) bd.destroyTag(tag);
  }

  /** Ends a wait in progress (at detach): it resolves with what there is. */
  #endWait(): void {
    const w = this.#wake;
    if (w === null) return;
    this.#wake = null;
    this.kernel.clock.cancel(this.#timer);
    w(this.#isr);
  }

  /** The interrupt handler: take the causes, acknowledge them, wake a waiter they satisfy. */
  readonly #intr = (): void => {
    const isr = this.rd(REG_ISR);
    this.wr(REG_ISR, isr);
    this.#isr |= isr;
    const w = this.#wake;
    if (w !== null && (this.#isr & this.#want) !== 0) {
      this.#wake = null;
      this.kernel.clock.cancel(this.#timer);
      w(this.#isr);
    }
  };
}
