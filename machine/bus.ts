/**
 * The MMIO bus: device register windows in the memory map's MMIO hole.
 *
 * Theory. A device maps a window `[base, base + size)` with handlers for
 * 32-bit loads and stores (64-bit accesses are split into two 32-bit ones,
 * low word first, unless the device gives 64-bit handlers). The bus checks
 * that an access is naturally aligned and falls in one window, then calls
 * the handler with the offset into the window. An access nothing answers is
 * a {@link MachineFault}; RAM is not on this path (it is reached through
 * `Ram`), so a bus access to a RAM address faults too.
 *
 * Windows are placed by a first-fit allocator over the `mmio` regions of the
 * memory map: each window is aligned to its size rounded up to a power of
 * two (as PCI BARs are) and to at least a page.
 *
 * Data structures: windows sorted by base in parallel arrays (`Float64Array`
 * bases and ends, handler objects); the last window hit is tried first.
 * Invariants (see {@link Bus.check}): windows sorted, disjoint, inside an
 * MMIO region. Cost: a hit on the last window is two compares and a call;
 * otherwise a binary search over the windows.
 *
 * @module
 */

import { type AccessKind, checkInt, hex, MachineError, MachineFault } from "./errors.ts";
import { type MemoryMap, PAGE_SIZE } from "./memmap.ts";

/** What a device answers on its register window. Offsets are from the window base. */
export interface MmioHandlers {
  /** A 32-bit load at `offset` (4-aligned); returns an unsigned 32-bit value. */
  read32(offset: number): number;
  /** A 32-bit store of `value` (unsigned 32-bit) at `offset` (4-aligned). */
  write32(offset: number, value: number): void;
  /** A 64-bit load at `offset` (8-aligned); by default two 32-bit loads, low first. */
  read64?(offset: number): bigint;
  /** A 64-bit store at `offset` (8-aligned); by default two 32-bit stores, low first. */
  write64?(offset: number, value: bigint): void;
}

/** A mapped register window. */
export interface MmioWindow {
  /** Name of the device that owns it. */
  readonly name: string;
  /** First bus address. */
  readonly base: number;
  /** Length in bytes. */
  readonly size: number;
}

/** Dispatches MMIO loads and stores to device register windows. */
export class Bus {
  /** The memory map whose `mmio` regions hold the windows. */
  readonly memmap: MemoryMap;

  #base = new Float64Array(8);
  #end = new Float64Array(8);
  #handlers: MmioHandlers[] = [];
  #names: string[] = [];
  #count = 0;
  #last = 0;
  /** Accesses dispatched, loads and stores together. */
  accesses = 0;

  /** Creates an empty bus over `memmap`. */
  constructor(memmap: MemoryMap) {
    this.memmap = memmap;
  }

  /** The mapped windows, sorted by base. */
  windows(): MmioWindow[] {
    const out: MmioWindow[] = [];
    for (let i = 0; i < this.#count; i++) {
      out.push({
        name: this.#names[i]!,
        base: this.#base[i]!,
        size: this.#end[i]! - this.#base[i]!,
      });
    }
    return out;
  }

  /**
   * Finds a free place for a window of `size` bytes in the MMIO regions:
   * the lowest base aligned to `max(PAGE_SIZE, size rounded up to a power
   * of two)`. Throws `ENOSPC` when none is left, `EINVAL` for a bad size.
   */
  allocate(size: number): number {
    checkInt("size", size, 1, 2 ** 40);
    let align = PAGE_SIZE;
    while (align < size) align *= 2;
    for (const r of this.memmap.ofType("mmio")) {
      let at = Math.ceil(r.base / align) * align;
      const end = r.base + r.size;
      for (let i = 0; i < this.#count && at + size <= end; i++) {
        if (this.#end[i]! <= at || this.#base[i]! >= at + size) continue;
        at = Math.ceil(this.#end[i]! / align) * align;
      }
      if (at + size <= end) return at;
    }
    throw new MachineError("ENOSPC", `no room for a ${hex(size)}-byte window in the MMIO hole`);
  }

  /**
   * Maps `handlers` at `[base, base + size)`. The window must be
   * page-aligned, lie inside one `mmio` region and overlap no other window
   * (`EINVAL`, `EBUSY` otherwise). Pass `base` from {@link allocate}.
   */
  map(name: string, base: number, size: number, handlers: MmioHandlers): MmioWindow {
    checkInt("base", base);
    checkInt("size", size, 1, 2 ** 40);
    if (base % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0) {
      throw new MachineError(
        "EINVAL",
        `window "${name}" must be page-aligned, got base ${hex(base)} size ${hex(size)}`,
      );
    }
    if (typeof handlers?.read32 !== "function" || typeof handlers?.write32 !== "function") {
      throw new MachineError("EINVAL", `window "${name}" needs read32 and write32 handlers`);
    }
    const region = this.memmap.find(base);
    if (region === undefined || region.type !== "mmio" || base + size > region.base + region.size) {
      throw new MachineError(
        "EINVAL",
        `window "${name}" at ${hex(base)}+${hex(size)} is not inside an MMIO region`,
      );
    }
    let i = 0;
    while (i < this.#count && this.#base[i]! < base) i++;
    const clash = (j: number) =>
      j >= 0 && j < this.#count && this.#base[j]! < base + size && this.#end[j]! > base;
    if (clash(i - 1) || clash(i)) {
      const j = clash(i - 1) ? i - 1 : i;
      throw new MachineError(
        "EBUSY",
        `window "${name}" at ${hex(base)} overlaps "${this.#names[j]}" at ${hex(this.#base[j])}`,
      );
    }
    if (this.#count === this.#base.length) {
      const nb = new Float64Array(this.#count * 2), ne = new Float64Array(this.#count * 2);
      nb.set(this.#base);
      ne.set(this.#end);
      this.#base = nb;
      this.#end = ne;
    }
    this.#base.copyWithin(i + 1, i, this.#count);
    this.#end.copyWithin(i + 1, i, this.#count);
    this.#base[i] = base;
    this.#end[i] = base + size;
    this.#handlers.splice(i, 0, handlers);
    this.#names.splice(i, 0, name);
    this.#count++;
    this.#last = 0;
    return { name, base, size };
  }

  /** Removes the window at `base`; throws `EINVAL` when none starts there. */
  unmap(base: number): void {
    let i = 0;
    while (i < this.#count && this.#base[i] !== base) i++;
    if (i === this.#count) throw new MachineError("EINVAL", `no window starts at ${hex(base)}`);
    this.#base.copyWithin(i, i + 1, this.#count);
    this.#end.copyWithin(i, i + 1, this.#count);
    this.#handlers.splice(i, 1);
    this.#names.splice(i, 1);
    this.#count--;
    this.#last = 0;
  }

  /** A 32-bit load at bus address `pa` (4-aligned, inside a window). */
  read32(pa: number): number {
    const i = this.#window(pa, 4, "read");
    this.accesses++;
    return this.#handlers[i]!.read32(pa - this.#base[i]!) >>> 0;
  }

  /** A 32-bit store at bus address `pa`; `value` is an integer in [-2^31, 2^32 - 1]. */
  write32(pa: number, value: number): void {
    if (!((value >>> 0) === value || (value | 0) === value)) {
      throw new MachineError(
        "EINVAL",
        `value must be a 32-bit integer, got ${hex(value)} (store at ${hex(pa)})`,
      );
    }
    const i = this.#window(pa, 4, "write");
    this.accesses++;
    this.#handlers[i]!.write32(pa - this.#base[i]!, value >>> 0);
  }

  /** A 64-bit load at `pa` (8-aligned), as an unsigned bigint. */
  read64(pa: number): bigint {
    const i = this.#window(pa, 8, "read");
    this.accesses++;
    const h = this.#handlers[i]!, off = pa - this.#base[i]!;
    if (h.read64) return BigInt.asUintN(64, h.read64(off));
    const lo = h.read32(off) >>> 0;
    const hi = h.read32(off + 4) >>> 0;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** A 64-bit store of `value` (in [0, 2^64 - 1]) at `pa` (8-aligned). */
  write64(pa: number, value: bigint): void {
    if (typeof value !== "bigint" || value < 0n || value >= 1n << 64n) {
      throw new MachineError("EINVAL", `value must be a bigint in [0, 2^64-1], got ${hex(value)}`);
    }
    const i = this.#window(pa, 8, "write");
    this.accesses++;
    const h = this.#handlers[i]!, off = pa - this.#base[i]!;
    if (h.write64) {
      h.write64(off, value);
      return;
    }
    h.write32(off, Number(value & 0xffffffffn));
    h.write32(off + 4, Number(value >> 32n));
  }

  /** A 64-bit load as a plain number: two 32-bit loads, low first; `ERANGE` past 2^53 - 1. */
  read64n(pa: number): number {
    const i = this.#window(pa, 8, "read");
    this.accesses++;
    const h = this.#handlers[i]!, off = pa - this.#base[i]!;
    const lo = h.read32(off) >>> 0;
    const hi = h.read32(off + 4) >>> 0;
    if (hi > 0x1fffff) {
      throw new MachineError("ERANGE", `64-bit register at ${hex(pa)} holds more than 2^53-1`);
    }
    return hi * 4294967296 + lo;
  }

  /** A 64-bit store of a plain number in [0, 2^53 - 1]: two 32-bit stores, low first. */
  write64n(pa: number, value: number): void {
    checkInt("value", value);
    const i = this.#window(pa, 8, "write");
    this.accesses++;
    const h = this.#handlers[i]!, off = pa - this.#base[i]!;
    const hi = Math.floor(value / 4294967296);
    h.write32(off, value - hi * 4294967296);
    h.write32(off + 4, hi);
  }

  /** Verifies that windows are sorted, disjoint and inside MMIO regions. */
  check(): void {
    for (let i = 0; i < this.#count; i++) {
      const b = this.#base[i]!, e = this.#end[i]!;
      if (!(b < e)) throw new MachineError("CORRUPT", `Bus.check: window ${i} is empty`);
      if (i > 0 && b < this.#end[i - 1]!) {
        throw new MachineError("CORRUPT", `Bus.check: windows ${i - 1}, ${i} overlap`);
      }
      const r = this.memmap.find(b);
      if (r === undefined || r.type !== "mmio" || e > r.base + r.size) {
        throw new MachineError("CORRUPT", `Bus.check: window ${i} is outside the MMIO hole`);
      }
    }
    if (this.#handlers.length !== this.#count || this.#names.length !== this.#count) {
      throw new MachineError("CORRUPT", "Bus.check: window arrays disagree");
    }
  }

  /** Index of the window holding the `n`-byte access at `pa`; faults when there is none. */
  #window(pa: number, n: number, kind: AccessKind): number {
    let i = this.#last;
    if (!(pa >= this.#base[i]! && pa + n <= this.#end[i]! && i < this.#count)) {
      i = -1;
      let lo = 0, hi = this.#count - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (pa < this.#base[mid]!) hi = mid - 1;
        else if (pa >= this.#end[mid]!) lo = mid + 1;
        else {
          i = mid;
          break;
        }
      }
      if (i < 0) {
        if (typeof pa !== "number" || !Number.isInteger(pa) || pa < 0) {
          throw new MachineFault(pa, n, kind, `address ${hex(pa)} is not a non-negative integer`);
        }
        const r = this.memmap.find(pa);
        const what = r === undefined ? "nothing" : `${r.type} "${r.name}"`;
        throw new MachineFault(pa, n, kind, `no MMIO window at ${hex(pa)} (${what} is there)`);
      }
      if (pa + n > this.#end[i]!) {
        throw new MachineFault(pa, n, kind, `access runs past the end of "${this.#names[i]}"`);
      }
      this.#last = i;
    }
    if (pa % n !== 0) {
      throw new MachineFault(pa, n, kind, `unaligned ${n * 8}-bit MMIO access`);
    }
    return i;
  }
}
