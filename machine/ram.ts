/**
 * Guest physical RAM.
 *
 * Theory. RAM is a sorted set of memory slots, each a guest-physical range
 * `[base, base + size)` as KVM's memslots are; slots never overlap and may be
 * adjacent (an access may run from one into the next). A slot is cut into
 * chunks of `chunkSize` bytes (a power of two, 64 KiB unless told) counted
 * from the slot's base. A chunk materialises on its first write: it is given
 * the next free `chunkSize` piece of a host bank, an `ArrayBuffer` of 4 MiB,
 * 8 MiB, ... up to 256 MiB. Banks are zero-filled by the host and committed
 * page by page as they are touched, so a 64 GiB guest costs the host its
 * slot tables (4 bytes per chunk, also committed lazily) and the chunks it
 * wrote. Reads of a chunk never written return zeros and allocate nothing.
 *
 * Data structures (structure of arrays): per slot its base, end and size in
 * `Float64Array`s and an `Int32Array` table holding, per chunk, 0 when the
 * chunk was never written or `1 + bank * 65536 + k` for the `k`-th chunk of
 * bank `bank`. Each bank has a `Uint8Array` and a `DataView` over it.
 *
 * Invariants (see {@link Ram.check}): slots sorted and disjoint; every chunk
 * handed out sits in the table entry it was handed to (a list kept in
 * handing-out order says which), so the entries name distinct chunks below
 * their bank's fill mark; the number of materialised chunks equals the
 * number of non-zero entries; the load and store caches and the gather cache
 * (the chunk of the last whole page a scatter-gather list read) describe the
 * chunk they claim. A chunk never loses its bank piece, so a cache of a
 * materialised chunk never goes stale. A check costs O(slots + chunks
 * written), or O(RAM / chunkSize) when exhaustive.
 *
 * Cost. A load or store of 1 to 8 bytes that falls in the chunk of the
 * previous load (or store) is one range test and one `DataView` operation;
 * otherwise the slot is found by binary search (the last slot hit is tried
 * first). Bulk operations cost one typed-array copy per chunk piece; copies
 * whose pieces share a bank use `copyWithin` and allocate nothing, and whole
 * pages read out use cached page views. A scatter-gather list
 * ({@link Ram.readSg}, {@link Ram.writeSg}) is checked segment by segment
 * with a few comparisons when the segments lie in the slot last looked up,
 * and a page-sized segment of the chunk of the previous one is read with no
 * lookup at all. Accesses are checked in full before any byte moves: a
 * refused access changes nothing.
 *
 * @module
 */

import { INT_MAX, TWO32 } from "./bits.ts";
import { type AccessKind, checkInt, checkPow2, hex, MachineError, MachineFault } from "./errors.ts";

/** A guest-physical range backed by RAM. */
export interface RamSlot {
  /** First guest-physical address of the slot. */
  readonly base: number;
  /** Size of the slot in bytes. */
  readonly size: number;
}

/** Options for {@link Ram}. */
export interface RamOptions {
  /** Bytes that materialise together on first write: a power of two in [4 KiB, 16 MiB]. */
  chunkSize?: number;
}

/** Host page size used for the cached page views. */
const HOST_PAGE = 4096;
const HOST_SHIFT = 12;
/** Largest bank; the first bank is 4 MiB and each next one doubles up to this. */
const BANK_MAX = 256 * 1024 * 1024;
/** Chunks per bank are numbered below this (a table entry packs bank and chunk). */
const BANK_SLOTS = 65536;
/** Pieces at most this long are copied by a byte loop rather than by a view. */
const SMALL = 32;

/** Default chunk size: 64 KiB. */
export const DEFAULT_CHUNK_SIZE = 65536;

/** Physical RAM made of memory slots that materialise in chunks on first write. */
export class Ram {
  /** Bytes per chunk (the unit of host allocation). */
  readonly chunkSize: number;
  /** The slots, sorted by base. */
  readonly slots: readonly RamSlot[];
  /** Total bytes of RAM over all slots. */
  readonly size: number;

  readonly #slotBase: Float64Array;
  readonly #slotEnd: Float64Array;
  readonly #slotSize: Float64Array;
  readonly #tables: Int32Array[];
  #lastSlot = 0;

  readonly #banks: Uint8Array[] = [];
  readonly #bankViews: DataView[] = [];
  readonly #bankChunks: number[] = []; // capacity in chunks
  readonly #bankPages: ((Uint8Array | undefined)[] | undefined)[] = [];
  readonly #bankChunkViews: ((Uint8Array | undefined)[] | undefined)[] = [];
  #bankFill = 0; // chunks handed out of the last bank
  #chunks = 0;
  // Per chunk handed out, in order: the slot and the chunk index it went to.
  #handedTo: Float64Array = new Float64Array(64);

  // Cache of the chunk of the last load (possibly the shared zero chunk).
  #rBase = -1;
  #rLen = 0;
  #rOff = 0;
  #rView: DataView;
  // Cache of the chunk of the last store (always materialised).
  #wBase = -1;
  #wLen = 0;
  #wOff = 0;
  #wView: DataView;

  // Chunk of the last whole page read by a scatter-gather list (always
  // materialised): its guest address and length, its bank and the index of
  // its first host page in the bank.
  #gBase = -1;
  #gLen = 0;
  #gBank = 0;
  #gPage = 0;

  readonly #zero: DataView;
  readonly #scratch = new Uint8Array(8);
  readonly #scratchView = new DataView(this.#scratch.buffer);

  /**
   * Creates RAM over `slots` (any order; they must be disjoint, page-aligned
   * and non-empty). Throws `EINVAL` naming the slot otherwise.
   */
  constructor(slots: readonly RamSlot[], options?: RamOptions) {
    if (options === undefined) options = {};
    this.chunkSize = checkPow2("chunkSize", options.chunkSize ?? DEFAULT_CHUNK_SIZE, 1 << 24);
    if (this.chunkSize < HOST_PAGE) {
      throw new MachineError("EINVAL", `chunkSize must be at least 4096, got ${this.chunkSize}`);
    }
    if (!Array.isArray(slots) || slots.length === 0) {
      throw new MachineError("EINVAL", `RAM needs at least one slot, got ${hex(slots)}`);
    }
    const sorted = slots.map((s, i) => {
      const base = checkInt(`slots[${i}].base`, s?.base);
      const size = checkInt(`slots[${i}].size`, s?.size, 1);
      if (base % HOST_PAGE !== 0 || size % HOST_PAGE !== 0) {
        throw new MachineError(
          "EINVAL",
          `slots[${i}] must be page-aligned, got base ${hex(base)} size ${hex(size)}`,
        );
      }
      if (base + size > Number.MAX_SAFE_INTEGER) {
        throw new MachineError("EINVAL", `slots[${i}] ends past 2^53-1: base ${hex(base)}`);
      }
      return { base, size };
    }).sort((a, b) => a.base - b.base);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.base < sorted[i - 1]!.base + sorted[i - 1]!.size) {
        throw new MachineError(
          "EINVAL",
          `RAM slots overlap: ${hex(sorted[i - 1]!.base)}+${hex(sorted[i - 1]!.size)} and ${
            hex(sorted[i]!.base)
          }`,
        );
      }
    }
    const n = sorted.length;
    this.#slotBase = new Float64Array(n);
    this.#slotEnd = new Float64Array(n);
    this.#slotSize = new Float64Array(n);
    this.#tables = [];
    let total = 0;
    for (let i = 0; i < n; i++) {
      this.#slotBase[i] = sorted[i]!.base;
      this.#slotSize[i] = sorted[i]!.size;
      this.#slotEnd[i] = sorted[i]!.base + sorted[i]!.size;
      this.#tables.push(new Int32Array(Math.ceil(sorted[i]!.size / this.chunkSize)));
      total += sorted[i]!.size;
    }
    this.slots = Object.freeze(sorted.map((s) => Object.freeze(s)));
    this.size = total;
    this.#zero = new DataView(new ArrayBuffer(this.chunkSize));
    this.#rView = this.#zero;
    this.#wView = this.#zero;
  }

  /** Host bytes given to materialised chunks: what the guest has written so far, in chunks. */
  touchedBytes(): number {
    return this.#chunks * this.chunkSize;
  }

  /** True when every byte of `[pa, pa + len)` is RAM (an empty range: when `pa` is a valid address). */
  isRam(pa: number, len: number): boolean {
    return this.#rangeProblem(pa, len) === null;
  }

  /** Why `[pa, pa + len)` is not all RAM, or `null` when it is. Allocates only on refusal. */
  rangeProblem(pa: number, len: number): string | null {
    return this.#rangeProblem(pa, len);
  }

  // ---------------------------------------------------------------- loads

  /** Reads the byte at `pa`. */
  read8(pa: number): number {
    if (typeof pa === "number") {
      const d = pa - this.#rBase;
      const off = d | 0;
      if (off === d && off >= 0 && off < this.#rLen) return this.#rView.getUint8(this.#rOff + off);
    }
    this.#lookupRead(pa, 1);
    return this.#rView.getUint8(this.#rOff + (pa - this.#rBase));
  }

  /** Reads the little-endian 16-bit value at `pa`. */
  read16(pa: number): number {
    if (typeof pa === "number") {
      const d = pa - this.#rBase;
      const off = d | 0;
      if (off === d && off >= 0 && off <= this.#rLen - 2) {
        return this.#rView.getUint16(this.#rOff + off, true);
      }
    }
    if (this.#lookupRead(pa, 2)) {
      return this.#rView.getUint16(this.#rOff + (pa - this.#rBase), true);
    }
    this.#readScratch(pa, 2);
    return this.#scratchView.getUint16(0, true);
  }

  /** Reads the little-endian 32-bit value at `pa` (unsigned). */
  read32(pa: number): number {
    if (typeof pa === "number") {
      const d = pa - this.#rBase;
      const off = d | 0;
      if (off === d && off >= 0 && off <= this.#rLen - 4) {
        return this.#rView.getUint32(this.#rOff + off, true);
      }
    }
    if (this.#lookupRead(pa, 4)) {
      return this.#rView.getUint32(this.#rOff + (pa - this.#rBase), true);
    }
    this.#readScratch(pa, 4);
    return this.#scratchView.getUint32(0, true);
  }

  /** Reads the little-endian 64-bit value at `pa` as an unsigned bigint. */
  read64(pa: number): bigint {
    if (typeof pa === "number") {
      const d = pa - this.#rBase;
      const off = d | 0;
      if (off === d && off >= 0 && off <= this.#rLen - 8) {
        return this.#rView.getBigUint64(this.#rOff + off, true);
      }
    }
    if (this.#lookupRead(pa, 8)) {
      return this.#rView.getBigUint64(this.#rOff + (pa - this.#rBase), true);
    }
    this.#readScratch(pa, 8);
    return this.#scratchView.getBigUint64(0, true);
  }

  /**
   * Reads the little-endian 64-bit value at `pa` as a plain number (for
   * descriptor fields). Throws `ERANGE` when the value exceeds `2^53 - 1`.
   */
  read64n(pa: number): number {
    let lo: number, hi: number;
    let off = -1;
    if (typeof pa === "number") {
      const d = pa - this.#rBase;
      off = d | 0;
      if (off !== d || off > this.#rLen - 8) off = -1;
    }
    if (off >= 0) {
      lo = this.#rView.getUint32(this.#rOff + off, true);
      hi = this.#rView.getUint32(this.#rOff + off + 4, true);
    } else if (this.#lookupRead(pa, 8)) {
      const o = this.#rOff + (pa - this.#rBase);
      lo = this.#rView.getUint32(o, true);
      hi = this.#rView.getUint32(o + 4, true);
    } else {
      this.#readScratch(pa, 8);
      lo = this.#scratchView.getUint32(0, true);
      hi = this.#scratchView.getUint32(4, true);
    }
    if (hi > 0x1fffff) {
      throw new MachineError(
        "ERANGE",
        `64-bit value at ${hex(pa)} is ${hex((BigInt(hi) << 32n) | BigInt(lo))}, past 2^53-1`,
      );
    }
    return hi * TWO32 + lo;
  }

  // --------------------------------------------------------------- stores

  /** Writes the byte `v` (an integer in [-128, 255]) at `pa`. */
  write8(pa: number, v: number): void {
    if (typeof pa === "number" && typeof v === "number") {
      const d = pa - this.#wBase;
      const off = d | 0;
      if (
        off === d && off >= 0 && off < this.#wLen && ((v & 0xff) === v || (v << 24 >> 24) === v)
      ) {
        this.#wView.setUint8(this.#wOff + off, v);
        return;
      }
    }
    checkValue("value", v, -128, 0xff);
    this.#lookupWrite(pa, 1);
    this.#wView.setUint8(this.#wOff + (pa - this.#wBase), v);
  }

  /** Writes the 16-bit `v` (an integer in [-2^15, 2^16 - 1]) little-endian at `pa`. */
  write16(pa: number, v: number): void {
    if (typeof pa === "number" && typeof v === "number") {
      const d = pa - this.#wBase;
      const off = d | 0;
      if (
        off === d && off >= 0 && off <= this.#wLen - 2 &&
        ((v & 0xffff) === v || (v << 16 >> 16) === v)
      ) {
        this.#wView.setUint16(this.#wOff + off, v, true);
        return;
      }
    }
    checkValue("value", v, -0x8000, 0xffff);
    if (this.#lookupWrite(pa, 2)) {
      this.#wView.setUint16(this.#wOff + (pa - this.#wBase), v, true);
      return;
    }
    this.#scratchView.setUint16(0, v, true);
    this.#writeScratch(pa, 2);
  }

  /** Writes the 32-bit `v` (an integer in [-2^31, 2^32 - 1]) little-endian at `pa`. */
  write32(pa: number, v: number): void {
    if (typeof pa === "number" && typeof v === "number") {
      const d = pa - this.#wBase;
      const off = d | 0;
      if (off === d && off >= 0 && off <= this.#wLen - 4 && ((v >>> 0) === v || (v | 0) === v)) {
        this.#wView.setUint32(this.#wOff + off, v, true);
        return;
      }
    }
    checkValue("value", v, -0x80000000, 0xffffffff);
    if (this.#lookupWrite(pa, 4)) {
      this.#wView.setUint32(this.#wOff + (pa - this.#wBase), v, true);
      return;
    }
    this.#scratchView.setUint32(0, v, true);
    this.#writeScratch(pa, 4);
  }

  /** Writes the 64-bit bigint `v` (in [-2^63, 2^64 - 1]) little-endian at `pa`. */
  write64(pa: number, v: bigint): void {
    if (typeof v !== "bigint" || v < -(1n << 63n) || v >= 1n << 64n) {
      throw new MachineError(
        "EINVAL",
        `value must be a bigint in [-2^63, 2^64-1], got ${hex(v)}`,
      );
    }
    if (typeof pa === "number") {
      const d = pa - this.#wBase;
      const off = d | 0;
      if (off === d && off >= 0 && off <= this.#wLen - 8) {
        this.#wView.setBigUint64(this.#wOff + off, v, true);
        return;
      }
    }
    if (this.#lookupWrite(pa, 8)) {
      this.#wView.setBigUint64(this.#wOff + (pa - this.#wBase), v, true);
      return;
    }
    this.#scratchView.setBigUint64(0, v, true);
    this.#writeScratch(pa, 8);
  }

  /** Writes the plain number `v` (an integer in [0, 2^53 - 1]) as 64 bits little-endian at `pa`. */
  write64n(pa: number, v: number): void {
    checkValue("value", v, 0, Number.MAX_SAFE_INTEGER);
    const hi = Math.floor(v / TWO32);
    const lo = v - hi * TWO32;
    if (typeof pa === "number") {
      const d = pa - this.#wBase;
      const off = d | 0;
      if (off === d && off >= 0 && off <= this.#wLen - 8) {
        this.#wView.setUint32(this.#wOff + off, lo, true);
        this.#wView.setUint32(this.#wOff + off + 4, hi, true);
        return;
      }
    }
    if (this.#lookupWrite(pa, 8)) {
      const o = this.#wOff + (pa - this.#wBase);
      this.#wView.setUint32(o, lo, true);
      this.#wView.setUint32(o + 4, hi, true);
      return;
    }
    this.#scratchView.setUint32(0, lo, true);
    this.#scratchView.setUint32(4, hi, true);
    this.#writeScratch(pa, 8);
  }

  // ----------------------------------------------------------------- bulk

  /**
   * Copies `length` bytes of RAM at `pa` into `dst[offset ..]` (by default
   * all of `dst`). Faults, changing nothing, unless the whole range is RAM.
   */
  read(pa: number, dst: Uint8Array, offset?: number, length?: number): void {
    if (offset === undefined) offset = 0;
    if (length === undefined) length = dst.length - offset;
    checkBuffer("dst", dst, offset, length);
    const why = this.#rangeProblem(pa, length);
    if (why !== null) throw new MachineFault(pa, length, "read", why);
    this.#readSegment(pa, dst, offset, length);
  }

  /**
   * Copies `src[offset .. offset + length)` (by default all of `src`) into
   * RAM at `pa`. Faults, changing nothing, unless the whole range is RAM.
   */
  write(pa: number, src: Uint8Array, offset?: number, length?: number): void {
    if (offset === undefined) offset = 0;
    if (length === undefined) length = src.length - offset;
    checkBuffer("src", src, offset, length);
    const why = this.#rangeProblem(pa, length);
    if (why !== null) throw new MachineFault(pa, length, "write", why);
    this.#writePieces(pa, src, offset, length);
  }

  /**
   * Gathers the first `nsegs` segments of `segs` (flat `address, length`
   * pairs) into `dst` from `offset` on, one after the other, and returns the
   * bytes moved. Everything is checked before a byte moves: `EINVAL` for a
   * bad count, buffer or window (segments longer in all than the room after
   * `offset`), a read fault naming the first segment that is not all RAM.
   * Costs one range test per segment and the copies; allocates nothing.
   */
  readSg(segs: ArrayLike<number>, nsegs: number, dst: Uint8Array, offset?: number): number {
    if (offset === undefined) offset = 0;
    const total = this.#checkSg(segs, nsegs, dst, offset, "read");
    if (dst.length <= INT_MAX) {
      // Offsets into fewer than 2^31 bytes are kept as 32-bit integers, which
      // reach the copy without being boxed as numbers on the heap.
      for (let i = 0, o = offset | 0; i < nsegs; i++) {
        const len = segs[2 * i + 1]!;
        this.#readSegment(segs[2 * i]!, dst, o, len);
        o = (o + len) | 0;
      }
    } else {
      for (let i = 0, o = offset; i < nsegs; i++) {
        const len = segs[2 * i + 1]!;
        this.#readSegment(segs[2 * i]!, dst, o, len);
        o += len;
      }
    }
    return total;
  }

  /**
   * Scatters `src` from `offset` on over the first `nsegs` segments of
   * `segs` and returns the bytes moved; checked in full first, as
   * {@link Ram.readSg} is (a write fault names the first segment that is not
   * all RAM).
   */
  writeSg(segs: ArrayLike<number>, nsegs: number, src: Uint8Array, offset?: number): number {
    if (offset === undefined) offset = 0;
    const total = this.#checkSg(segs, nsegs, src, offset, "write");
    for (let i = 0, o = offset; i < nsegs; i++) {
      const len = segs[2 * i + 1]!;
      this.#writePieces(segs[2 * i]!, src, o, len);
      o += len;
    }
    return total;
  }

  /** Sets `len` bytes at `pa` to `byte` (0..255). Zero-filling never-written chunks costs nothing. */
  fill(pa: number, len: number, byte: number): void {
    checkValue("byte", byte, 0, 0xff);
    const why = this.#rangeProblem(pa, len);
    if (why !== null) throw new MachineFault(pa, len, "write", why);
    let p = pa, left = len;
    while (left > 0) {
      const n = this.#piece(p, left);
      if (byte !== 0 || this.#tables[this.#pSlot]![this.#pIdx] !== 0) {
        const id = this.#materialise(this.#pSlot, this.#pIdx);
        const at = (id & 0xffff) * this.chunkSize + this.#pOff;
        this.#banks[id >>> 16]!.fill(byte, at, at + n);
      }
      p += n;
      left -= n;
    }
  }

  /**
   * Copies `len` bytes from `src` to `dst` (guest-physical), as memmove does:
   * overlapping ranges copy as if through a buffer. Both ranges are checked
   * before any byte moves.
   */
  copy(dst: number, src: number, len: number): void {
    const whyS = this.#rangeProblem(src, len);
    if (whyS !== null) throw new MachineFault(src, len, "read", whyS);
    const whyD = this.#rangeProblem(dst, len);
    if (whyD !== null) throw new MachineFault(dst, len, "write", whyD);
    if (len === 0 || dst === src) return;
    if (dst > src && dst < src + len) {
      // Overlap with the destination above: walk down from the ends.
      let se = src + len, de = dst + len, left = len;
      while (left > 0) {
        const ns = this.#pieceBack(se, left);
        const sSlot = this.#pSlot, sIdx = this.#pIdx, sStart = this.#pOff;
        // The destination piece ends at `de` and is no longer than the source's.
        const n = this.#pieceBack(de, ns);
        this.#movePiece(this.#pSlot, this.#pIdx, this.#pOff, sSlot, sIdx, sStart + ns - n, n);
        se -= n;
        de -= n;
        left -= n;
      }
      return;
    }
    let s = src, d = dst, left = len;
    while (left > 0) {
      const ns = this.#piece(s, left);
      const sSlot = this.#pSlot, sIdx = this.#pIdx, sOff = this.#pOff;
      const n = this.#piece(d, ns);
      this.#movePiece(this.#pSlot, this.#pIdx, this.#pOff, sSlot, sIdx, sOff, n);
      s += n;
      d += n;
      left -= n;
    }
  }

  // ---------------------------------------------------------------- check

  /**
   * Verifies the invariants of the slot tables, banks and caches; throws on
   * the first broken one. Costs O(slots + chunks written): each chunk handed
   * out must sit in the table entry it was given to. `exhaustive` also reads
   * every table entry (O(RAM / chunkSize)), so that an entry nothing handed
   * out is found too.
   */
  check(exhaustive?: boolean): void {
    if (exhaustive === undefined) exhaustive = false;
    const fail = (m: string): never => {
      throw new MachineError("CORRUPT", `Ram.check: ${m}`);
    };
    const n = this.#slotBase.length;
    for (let i = 0; i < n; i++) {
      if (this.#slotEnd[i] !== this.#slotBase[i]! + this.#slotSize[i]!) fail(`slot ${i} end`);
      if (i > 0 && this.#slotBase[i]! < this.#slotEnd[i - 1]!) {
        fail(`slots ${i - 1} and ${i} overlap`);
      }
      if (this.#tables[i]!.length !== Math.ceil(this.#slotSize[i]! / this.chunkSize)) {
        fail(`slot ${i} table length`);
      }
    }
    if (this.#banks.length !== this.#bankViews.length) fail("bank views");
    let k = 0;
    for (let b = 0; b < this.#banks.length; b++) {
      const fillMark = b === this.#banks.length - 1 ? this.#bankFill : this.#bankChunks[b]!;
      for (let f = 0; f < fillMark; f++, k++) {
        const s = this.#handedTo[2 * k]!;
        const idx = this.#handedTo[2 * k + 1]!;
        if (!(s >= 0 && s < n) || this.#tables[s]![idx] !== b * BANK_SLOTS + f + 1) {
          fail(`chunk ${f} of bank ${b} is not where it was handed out (slot ${s} chunk ${idx})`);
        }
      }
    }
    if (exhaustive) {
      let used = 0;
      for (let i = 0; i < n; i++) {
        const t = this.#tables[i]!;
        for (let j = 0; j < t.length; j++) if (t[j] !== 0) used++;
      }
      if (used !== this.#chunks) fail(`${used} chunks mapped, ${this.#chunks} counted`);
    }
    let handed = 0;
    for (let b = 0; b < this.#banks.length; b++) {
      handed += b === this.#banks.length - 1 ? this.#bankFill : this.#bankChunks[b]!;
      if (this.#banks[b]!.length !== this.#bankChunks[b]! * this.chunkSize) fail(`bank ${b} size`);
    }
    if (handed !== this.#chunks) fail(`${handed} chunks handed out, ${this.#chunks} counted`);
    this.#checkCache("load", this.#rBase, this.#rLen, this.#rOff, this.#rView, true);
    this.#checkCache("store", this.#wBase, this.#wLen, this.#wOff, this.#wView, false);
    if (this.#gLen !== 0) {
      const s = this.#findSlot(this.#gBase);
      const rel = this.#gBase - (s < 0 ? 0 : this.#slotBase[s]!);
      const idx = rel / this.chunkSize;
      const v = s < 0 || !Number.isInteger(idx) ? 0 : this.#tables[s]![idx]!;
      if (
        v === 0 || this.#gBank !== (v - 1) >>> 16 ||
        this.#gPage * HOST_PAGE !== ((v - 1) & 0xffff) * this.chunkSize ||
        this.#gLen !== Math.min(this.chunkSize, this.#slotSize[s]! - rel)
      ) {
        fail(`the gather cache at ${hex(this.#gBase)} does not describe its chunk`);
      }
    }
  }

  #checkCache(
    what: string,
    base: number,
    len: number,
    off: number,
    view: DataView,
    zeroOk: boolean,
  ): void {
    if (len === 0) return;
    const s = this.#findSlot(base);
    if (s < 0) {
      throw new MachineError("CORRUPT", `Ram.check: ${what} cache at ${hex(base)} is not RAM`);
    }
    const rel = base - this.#slotBase[s]!;
    const idx = rel / this.chunkSize;
    if (!Number.isInteger(idx)) {
      throw new MachineError("CORRUPT", `Ram.check: ${what} cache not chunk-aligned`);
    }
    const v = this.#tables[s]![idx]!;
    const want = Math.min(this.chunkSize, this.#slotSize[s]! - rel);
    if (len !== want) {
      throw new MachineError("CORRUPT", `Ram.check: ${what} cache length ${len}, chunk is ${want}`);
    }
    if (v === 0) {
      if (!zeroOk || view !== this.#zero || off !== 0) {
        throw new MachineError("CORRUPT", `Ram.check: ${what} cache names an unmaterialised chunk`);
      }
    } else if (
      view !== this.#bankViews[(v - 1) >>> 16] || off !== ((v - 1) & 0xffff) * this.chunkSize
    ) {
      throw new MachineError("CORRUPT", `Ram.check: ${what} cache names the wrong bank piece`);
    }
  }

  // ------------------------------------------------------------- internals

  #pSlot = 0;
  #pIdx = 0;
  #pOff = 0;

  /** Index of the slot holding `pa`, or -1. */
  #findSlot(pa: number): number {
    const last = this.#lastSlot;
    if (pa >= this.#slotBase[last]! && pa < this.#slotEnd[last]!) return last;
    const bases = this.#slotBase;
    let lo = 0, hi = bases.length - 1;
    if (!(pa >= bases[0]!)) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (bases[mid]! <= pa) lo = mid;
      else hi = mid - 1;
    }
    if (pa < this.#slotEnd[lo]!) {
      this.#lastSlot = lo;
      return lo;
    }
    return -1;
  }

  #rangeProblem(pa: number, len: number): string | null {
    if (typeof pa !== "number" || !Number.isInteger(pa) || pa < 0) {
      return `address ${hex(pa)} is not a non-negative integer`;
    }
    if (typeof len !== "number" || !Number.isInteger(len) || len < 0) {
      return `length ${hex(len)} is not a non-negative integer`;
    }
    if (len === 0) return null;
    if (pa > Number.MAX_SAFE_INTEGER - len) return `range ${hex(pa)}+${hex(len)} passes 2^53-1`;
    const end = pa + len;
    let s = this.#findSlot(pa);
    if (s < 0) return `${hex(pa)} is not RAM`;
    const n = this.#slotBase.length;
    while (this.#slotEnd[s]! < end) {
      const e = this.#slotEnd[s];
      if (s + 1 >= n || this.#slotBase[s + 1] !== e) return `${hex(e)} is not RAM`;
      s++;
    }
    return null;
  }

  /**
   * Locates the piece of a checked range that starts at `pa`: sets
   * `#pSlot`, `#pIdx` (chunk), `#pOff` (offset in the chunk) and returns its
   * length, at most `len`.
   */
  #piece(pa: number, len: number): number {
    const s = this.#findSlot(pa);
    const rel = pa - this.#slotBase[s]!;
    const cs = this.chunkSize;
    const idx = Math.floor(rel / cs);
    const off = rel - idx * cs;
    const chunkLen = Math.min(cs, this.#slotSize[s]! - idx * cs);
    this.#pSlot = s;
    this.#pIdx = idx;
    this.#pOff = off;
    return Math.min(len, chunkLen - off);
  }

  /** As {@link #piece} for the piece that ends at `end` (exclusive); `#pOff` is its start. */
  #pieceBack(end: number, len: number): number {
    const s = this.#findSlot(end - 1);
    const rel = end - 1 - this.#slotBase[s]!;
    const cs = this.chunkSize;
    const idx = Math.floor(rel / cs);
    const last = rel - idx * cs;
    const n = Math.min(len, last + 1);
    this.#pSlot = s;
    this.#pIdx = idx;
    this.#pOff = last + 1 - n;
    return n;
  }

  /**
   * Checks a segment list for {@link Ram.readSg} and {@link Ram.writeSg};
   * returns its total length. A segment inside the slot of the previous
   * lookup passes on a few comparisons; any other goes through the full
   * range check, which also words the fault.
   */
  #checkSg(
    segs: ArrayLike<number>,
    nsegs: number,
    buf: Uint8Array,
    offset: number,
    kind: AccessKind,
  ): number {
    const name = kind === "read" ? "dst" : "src";
    if (
      segs === null || typeof segs !== "object" || !Number.isInteger(nsegs) || nsegs < 0 ||
      2 * nsegs > segs.length
    ) {
      throw new MachineError(
        "EINVAL",
        `segment count ${hex(nsegs)} does not fit a list of ${String(segs?.length)} numbers`,
      );
    }
    checkBuffer(name, buf, offset, 0);
    let total = 0;
    for (let i = 0; i < nsegs; i++) {
      const pa = segs[2 * i]!, len = segs[2 * i + 1]!;
      const s = this.#lastSlot;
      if (
        !(typeof pa === "number" && typeof len === "number" && pa >= this.#slotBase[s]! &&
          len >= 0 && pa + len <= this.#slotEnd[s]! &&
          Math.floor(pa) === pa && Math.floor(len) === len)
      ) {
        const why = this.#rangeProblem(pa, len);
        if (why !== null) throw new MachineFault(pa, len, kind, why);
      }
      total += len;
    }
    if (total > buf.length - offset) {
      throw new MachineError(
        "EINVAL",
        `${nsegs} segments of ${total} bytes do not fit the ${
          buf.length - offset
        } bytes of ${name} after offset ${offset}`,
      );
    }
    return total;
  }

  /**
   * Copies the checked range `[pa, pa + len)` into `dst[o ..]`. A whole
   * host page of the chunk of the previous such copy (the usual
   * scatter-gather segment) costs a subtraction, three tests and the copy
   * from the page's cached view; any other range inside one materialised
   * chunk of the slot last looked up is located without a search.
   */
  #readSegment(pa: number, dst: Uint8Array, o: number, len: number): void {
    const d = pa - this.#gBase;
    if (len === HOST_PAGE && d >= 0 && d < this.#gLen && (d & (HOST_PAGE - 1)) === 0) {
      dst.set(this.#pageView(this.#gBank, this.#gPage + (d >>> HOST_SHIFT)), o);
      return;
    }
    const s = this.#lastSlot;
    const rel = pa - this.#slotBase[s]!;
    const cs = this.chunkSize;
    if (len > 0 && rel >= 0 && rel + len <= this.#slotSize[s]!) {
      const idx = Math.floor(rel / cs);
      const off = rel - idx * cs;
      if (off + len <= cs) {
        const v = this.#tables[s]![idx]!;
        if (v === 0) {
          dst.fill(0, o, o + len);
          return;
        }
        if (len === HOST_PAGE && (off & (HOST_PAGE - 1)) === 0) {
          const b = (v - 1) >>> 16;
          const page = (((v - 1) & 0xffff) * cs) >>> HOST_SHIFT;
          this.#gBase = pa - off;
          this.#gLen = Math.min(cs, this.#slotSize[s]! - idx * cs);
          this.#gBank = b;
          this.#gPage = page;
          dst.set(this.#pageView(b, page + (off >>> HOST_SHIFT)), o);
        } else {
          this.#copyOut(v - 1, off, dst, o, len);
        }
        return;
      }
    }
    this.#readPieces(pa, dst, o, len);
  }

  /** Copies the checked range `[p, p + left)` into `dst[o ..]`. */
  #readPieces(p: number, dst: Uint8Array, o: number, left: number): void {
    while (left > 0) {
      const n = this.#piece(p, left);
      const v = this.#tables[this.#pSlot]![this.#pIdx]!;
      if (v === 0) dst.fill(0, o, o + n);
      else this.#copyOut(v - 1, this.#pOff, dst, o, n);
      p += n;
      o += n;
      left -= n;
    }
  }

  /** Copies `src[o .. o + left)` into the checked range `[p, p + left)`. */
  #writePieces(p: number, src: Uint8Array, o: number, left: number): void {
    while (left > 0) {
      const n = this.#piece(p, left);
      const id = this.#materialise(this.#pSlot, this.#pIdx);
      const b = id >>> 16;
      const bytes = this.#banks[b]!;
      const at = (id & 0xffff) * this.chunkSize + this.#pOff;
      if (n <= SMALL) {
        for (let i = 0; i < n; i++) bytes[at + i] = src[o + i]!;
      } else if (o === 0 && n === src.length) {
        bytes.set(src, at);
      } else {
        bytes.set(src.subarray(o, o + n), at);
      }
      p += n;
      o += n;
      left -= n;
    }
  }

  /** Moves `n` bytes between two located pieces (destination first). */
  #movePiece(
    dSlot: number,
    dIdx: number,
    dOff: number,
    sSlot: number,
    sIdx: number,
    sOff: number,
    n: number,
  ): void {
    const sv = this.#tables[sSlot]![sIdx]!;
    if (sv === 0) {
      const dv = this.#tables[dSlot]![dIdx]!;
      if (dv === 0) return; // zeros onto zeros
      const at = ((dv - 1) & 0xffff) * this.chunkSize + dOff;
      this.#banks[(dv - 1) >>> 16]!.fill(0, at, at + n);
      return;
    }
    const did = this.#materialise(dSlot, dIdx);
    const sid = sv - 1;
    const sAt = (sid & 0xffff) * this.chunkSize + sOff;
    const dAt = (did & 0xffff) * this.chunkSize + dOff;
    const sb = sid >>> 16, db = did >>> 16;
    if (sb === db) {
      this.#banks[db]!.copyWithin(dAt, sAt, sAt + n);
    } else if ((sAt & (HOST_PAGE - 1)) === 0 && (n & (HOST_PAGE - 1)) === 0) {
      const to = this.#banks[db]!;
      for (let p = sAt / HOST_PAGE, q = dAt, end = dAt + n; q < end; p++, q += HOST_PAGE) {
        to.set(this.#pageView(sb, p), q);
      }
    } else {
      this.#banks[db]!.set(this.#banks[sb]!.subarray(sAt, sAt + n), dAt);
    }
  }

  /** Copies `n` bytes of the materialised chunk `id` from `off` into `dst[o ..]`. */
  #copyOut(id: number, off: number, dst: Uint8Array, o: number, n: number): void {
    const b = id >>> 16;
    const bytes = this.#banks[b]!;
    const at = (id & 0xffff) * this.chunkSize + off;
    if (n <= SMALL) {
      for (let i = 0; i < n; i++) dst[o + i] = bytes[at + i]!;
      return;
    }
    if (off === 0 && n === this.chunkSize) {
      // A whole chunk (a chunk-aligned DMA buffer) goes in one copy.
      dst.set(this.#chunkView(b, id & 0xffff), o);
      return;
    }
    if ((at & (HOST_PAGE - 1)) === 0 && (n & (HOST_PAGE - 1)) === 0) {
      for (let p = at / HOST_PAGE, q = o, end = o + n; q < end; p++, q += HOST_PAGE) {
        dst.set(this.#pageView(b, p), q);
      }
      return;
    }
    dst.set(bytes.subarray(at, at + n), o);
  }

  /** The cached view of chunk `c` of bank `b` (made on first use, then kept). */
  #chunkView(b: number, c: number): Uint8Array {
    let chunks = this.#bankChunkViews[b];
    if (chunks === undefined) {
      chunks = new Array(this.#bankChunks[b]!);
      this.#bankChunkViews[b] = chunks;
    }
    let view = chunks[c];
    if (view === undefined) {
      const bank = this.#banks[b]!;
      view = new Uint8Array(bank.buffer, bank.byteOffset + c * this.chunkSize, this.chunkSize);
      chunks[c] = view;
    }
    return view;
  }

  /** The cached view of host page `p` of bank `b` (made on first use, then kept). */
  #pageView(b: number, p: number): Uint8Array {
    let pages = this.#bankPages[b];
    if (pages === undefined) {
      pages = new Array(this.#banks[b]!.length / HOST_PAGE);
      this.#bankPages[b] = pages;
    }
    let view = pages[p];
    if (view === undefined) {
      view = new Uint8Array(this.#banks[b]!.buffer, p * HOST_PAGE, HOST_PAGE);
      pages[p] = view;
    }
    return view;
  }

  /** Gives chunk `idx` of slot `s` its host bytes if it has none; returns its id. */
  #materialise(s: number, idx: number): number {
    const t = this.#tables[s]!;
    const v = t[idx]!;
    if (v !== 0) return v - 1;
    let b = this.#banks.length - 1;
    if (b < 0 || this.#bankFill === this.#bankChunks[b]) {
      b++;
      if (b >= 32767) throw new MachineError("ENOMEM", "the host ran out of RAM banks");
      const bytes = Math.max(this.chunkSize, Math.min(BANK_MAX, (4 * 1024 * 1024) * 2 ** b));
      const buf = new Uint8Array(bytes);
      this.#banks.push(buf);
      this.#bankViews.push(new DataView(buf.buffer));
      this.#bankChunks.push(Math.min(BANK_SLOTS, bytes / this.chunkSize));
      this.#bankPages.push(undefined);
      this.#bankFill = 0;
    }
    const id = b * BANK_SLOTS + this.#bankFill;
    if (2 * this.#chunks + 2 > this.#handedTo.length) {
      const more = new Float64Array(this.#handedTo.length * 2);
      more.set(this.#handedTo);
      this.#handedTo = more;
    }
    this.#handedTo[2 * this.#chunks] = s;
    this.#handedTo[2 * this.#chunks + 1] = idx;
    this.#bankFill++;
    this.#chunks++;
    t[idx] = id + 1;
    // The load cache may hold this chunk as the zero chunk.
    this.#rBase = -1;
    this.#rLen = 0;
    return id;
  }

  /**
   * Points the load cache at the chunk holding `pa` and returns true when
   * `[pa, pa + n)` lies inside it; returns false when the access crosses a
   * chunk end. Faults when `pa` is not RAM.
   */
  #lookupRead(pa: number, n: number): boolean {
    const s = this.#locate(pa, n, "read");
    const rel = pa - this.#slotBase[s]!;
    const cs = this.chunkSize;
    const idx = Math.floor(rel / cs);
    const off = rel - idx * cs;
    const chunkLen = Math.min(cs, this.#slotSize[s]! - idx * cs);
    if (off + n > chunkLen) return false;
    const v = this.#tables[s]![idx]!;
    if (v === 0) {
      this.#rView = this.#zero;
      this.#rOff = 0;
    } else {
      this.#rView = this.#bankViews[(v - 1) >>> 16]!;
      this.#rOff = (((v - 1) & 0xffff) * cs) | 0;
    }
    this.#rBase = pa - off;
    this.#rLen = chunkLen | 0;
    return true;
  }

  /** As {@link #lookupRead} for the store cache; materialises the chunk. */
  #lookupWrite(pa: number, n: number): boolean {
    const s = this.#locate(pa, n, "write");
    const rel = pa - this.#slotBase[s]!;
    const cs = this.chunkSize;
    const idx = Math.floor(rel / cs);
    const off = rel - idx * cs;
    const chunkLen = Math.min(cs, this.#slotSize[s]! - idx * cs);
    if (off + n > chunkLen) return false;
    const id = this.#materialise(s, idx);
    this.#wView = this.#bankViews[id >>> 16]!;
    this.#wOff = ((id & 0xffff) * cs) | 0;
    this.#wBase = pa - off;
    this.#wLen = chunkLen | 0;
    return true;
  }

  /** The slot holding `pa`; faults for an access of `n` bytes when there is none. */
  #locate(pa: number, n: number, kind: AccessKind): number {
    if (typeof pa !== "number" || !Number.isInteger(pa) || pa < 0) {
      throw new MachineFault(pa, n, kind, `address ${hex(pa)} is not a non-negative integer`);
    }
    const s = this.#findSlot(pa);
    if (s < 0) throw new MachineFault(pa, n, kind, `${hex(pa)} is not RAM`);
    return s;
  }

  #readScratch(pa: number, n: number): void {
    this.read(pa, this.#scratch, 0, n);
  }

  #writeScratch(pa: number, n: number): void {
    this.write(pa, this.#scratch, 0, n);
  }
}

function checkValue(name: string, v: number, min: number, max: number): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new MachineError(
      "EINVAL",
      `${name} must be an integer in [${min}, ${max}], got ${hex(v)}`,
    );
  }
}

function checkBuffer(name: string, buf: Uint8Array, offset: number, length: number): void {
  if (!(buf instanceof Uint8Array)) {
    throw new MachineError("EINVAL", `${name} must be a Uint8Array, got ${hex(buf)}`);
  }
  if (
    !Number.isInteger(offset) || offset < 0 || offset > buf.length ||
    !Number.isInteger(length) || length < 0 || length > buf.length - offset
  ) {
    throw new MachineError(
      "EINVAL",
      `${name} window offset ${hex(offset)} length ${
        hex(length)
      } does not fit its ${buf.length} bytes`,
    );
  }
}
