/**
 * The page array and the physical segments (NetBSD's uvm_physseg).
 *
 * Theory. Physical memory is handed to the kernel as segments of page frames:
 * `uvm_page_physload(start, end, availStart, availEnd, freeList)` says that
 * frames `[start, end)` exist and that `[availStart, availEnd)` of them start
 * free. Segments never overlap; they are kept sorted by `start` whatever the
 * load order, so that `find(pfn)` is a binary search and "every segment in
 * ascending address order" is a walk of the table. Each segment carries the
 * start hint that `uvm_pglistalloc` keeps (an unsigned 32-bit offset from
 * `availStart`, never above `availEnd - availStart`). The order that
 * `uvm_pglistalloc` searches segments in is kept apart, as a list of table
 * indices rebuilt at each load: by free list, then by address (BSEARCH) or,
 * as NetBSD's x86 ports do (BIGFIRST), from the smallest segment up, where
 * the seed keeps its array largest first and walks it from the end.
 *
 * Every frame of a segment gets a page id. Ids are handed out in load order,
 * dense over loaded frames, so only loaded frames cost memory wherever a
 * segment sits (frame numbers themselves may go up to `2^53 / pageSize`); a
 * segment's first id is chosen congruent to its first frame modulo 32, so a
 * 32-bit bitmap word always covers 32 frames aligned on a multiple of 32.
 * Ids 0 to 31 are never frames: ids 0 to 5 serve as the heads of the six
 * free-page queues of {@link Uvm}.
 *
 * Per page (structure of arrays, indexed by id), 11 bytes and a bit:
 * - `flags` (Uint8Array): {@link PG_FREE}, {@link PG_PGLCA}, {@link PG_PGLIST}.
 * - `owner` (Uint8Array): a byte the kernel may use for an allocated page.
 * - `freeListOf` (Uint8Array): the free list of the page's segment.
 * - `nextRel`, `prevRel` (Int32Array): free-queue links stored relative to the
 *   page itself so that an all-zero array already chains a run of pages in
 *   descending order; loading a segment links its free pages in O(1).
 * - `freeMap` (Int32Array): one bit per page, set when the page is free.
 * Two summary levels make long-run searches cheap: bit `w` of `fullMap` is set
 * when bitmap word `w` is all ones (32 free pages), and bit `k` of `fullSum`
 * is set when `fullMap[k]` is not zero.
 *
 * Invariants (verified by {@link PhysMem.check}): segments sorted and
 * disjoint, hints within their segments, a page's free bit equals its
 * `PG_FREE` flag, ids that are not frames are never free, both summary levels
 * agree with the bitmap.
 *
 * Cost: `physload` is O(segments) plus typed-array fills over the new pages
 * (and an amortised copy when the arrays grow, by a quarter at least, so
 * spare capacity keeps the total under 14 bytes a page); `find` and `segmentOfId` are
 * O(log segments); bitmap searches look at one word per 32 pages, and
 * {@link PhysMem.findFullWord} at one summary word per 32768 pages.
 *
 * @module
 */

import { checkInteger, describe, KernelError } from "./errors.ts";

/** Number of free lists (the x86 port's `VM_NFREELIST`). */
export const VM_NFREELIST = 6;
/** Free list of memory no other free list covers (above 4 GiB on x86). */
export const VM_FREELIST_DEFAULT = 0;
/** Free list of memory below 1 TiB. */
export const VM_FREELIST_FIRST1T = 1;
/** Free list of memory below 64 GiB. */
export const VM_FREELIST_FIRST64G = 2;
/** Free list of memory below 4 GiB. */
export const VM_FREELIST_FIRST4G = 3;
/** Free list of memory below 1 MiB. */
export const VM_FREELIST_FIRST1M = 4;
/** Free list of memory below 16 MiB (ISA DMA). */
export const VM_FREELIST_FIRST16 = 5;

/** Page flag: the page is free, on the queue of its free list. */
export const PG_FREE = 0x01;
/** Page flag: taken by the aggressive contiguous search, not yet placed. */
export const PG_PGLCA = 0x02;
/** Page flag: the page belongs to a page list of `uvm_pglistalloc`. */
export const PG_PGLIST = 0x04;

/**
 * The order `uvm_pglistalloc` searches the segments of a free list in
 * (`VM_PHYSSEG_STRAT`): `bsearch` (the default) by ascending address;
 * `bigfirst` (NetBSD's x86 ports) from the smallest segment up, segments of
 * equal size the one loaded last first.
 */
export type PhysSegStrategy = "bsearch" | "bigfirst";

/** Ids below this are never page frames (queue heads and padding). */
export const FIRST_PAGE_ID = 32;
/** Ids stay below this, so that links and word indices fit in 32 bits. */
const MAX_IDS = 0x7fff_f000;

/** A segment as {@link PhysMem.segment} reports it (frame numbers). */
export interface PhysSegInfo {
  /** First frame of the segment. */
  start: number;
  /** One past the last frame. */
  end: number;
  /** First frame that was free at load time. */
  availStart: number;
  /** One past the last frame that was free at load time. */
  availEnd: number;
  /** Free list of the segment's pages. */
  freeList: number;
  /** `uvm_pglistalloc`'s start hint, relative to `availStart`. */
  startHint: number;
}

/** Number of set bits of a 32-bit word. */
export function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/** Index of the lowest set bit of a non-zero 32-bit word. */
function ctz32(v: number): number {
  return 31 - Math.clz32(v & -v);
}

/**
 * The physical segments and the page array behind them. {@link Uvm} owns one
 * and keeps the free queues in its link arrays; the arrays are public for the
 * memory-management code of this folder and are replaced when a physload
 * grows them, so never keep one across a physload.
 */
export class PhysMem {
  /** Bytes per page. */
  readonly pageSize: number;
  /** `log2(pageSize)`. */
  readonly pageShift: number;
  /** Highest frame number (exclusive) that a segment may reach. */
  readonly maxFrame: number;

  /** Number of segments. */
  nsegs = 0;
  /** Segment table, sorted by start: first frame. */
  segStart: Float64Array = new Float64Array(4);
  /** Segment table: one past the last frame. */
  segEnd: Float64Array = new Float64Array(4);
  /** Segment table: first frame free at load time. */
  segAvailStart: Float64Array = new Float64Array(4);
  /** Segment table: one past the last frame free at load time. */
  segAvailEnd: Float64Array = new Float64Array(4);
  /** Segment table: start hint (u_int, relative to availStart). */
  segHint: Float64Array = new Float64Array(4);
  /** Segment table: `id - pfn` for every frame of the segment. */
  segIdOffset: Float64Array = new Float64Array(4);
  /** Segment table: free list. */
  segFreeList: Int32Array = new Int32Array(4);

  /** The order segments are searched in (see {@link PhysSegStrategy}). */
  readonly strategy: PhysSegStrategy;
  /**
   * Indices into the segment table in the order `uvm_pglistalloc` searches
   * them: free list 0 first, then by {@link strategy} within each list.
   */
  searchOrder: Int32Array = new Int32Array(4);

  /** Per load: first id of the segment loaded n-th (ascending). */
  #loadBase: Float64Array = new Float64Array(4);
  /** Per load: the segment's current index in the sorted table. */
  #loadSeg: Int32Array = new Int32Array(4);
  /**
   * Load numbers sorted by whole-segment size, largest first, a segment
   * after every one of its size (`uvm_physseg_plug` under BIGFIRST).
   */
  #bySize: Int32Array = new Int32Array(4);

  /** Ids in use (the next segment's ids start at or after this). */
  nids: number = FIRST_PAGE_ID;
  /** Page flags by id. */
  flags: Uint8Array;
  /** Owner byte by id (free for the kernel's use on allocated pages). */
  owner: Uint8Array;
  /** Free list by id. */
  freeListOf: Uint8Array;
  /** Queue link: `next = id - 1 + nextRel[id]`. */
  nextRel: Int32Array;
  /** Queue link: `prev = id + 1 + prevRel[id]`. */
  prevRel: Int32Array;
  /** Free-page bitmap by id. */
  freeMap: Int32Array;
  /** Bit per bitmap word: the word is all ones. */
  fullMap: Int32Array;
  /** Bit per `fullMap` word: that word is not zero. */
  fullSum: Int32Array;

  /**
   * Creates an empty page array for pages of `pageSize` bytes (a power of
   * two), whose segments are searched in the order `strategy` says.
   */
  constructor(pageSize = 4096, strategy: PhysSegStrategy = "bsearch") {
    if (strategy !== "bsearch" && strategy !== "bigfirst") {
      throw new KernelError(
        "EINVAL",
        `physseg strategy must be "bsearch" or "bigfirst", got ${describe(strategy)}`,
      );
    }
    this.strategy = strategy;
    checkInteger("page_size", pageSize, 1, 2 ** 30);
    if ((pageSize & (pageSize - 1)) !== 0) {
      throw new KernelError(
        "EINVAL",
        `page_size must be a power of two, got ${describe(pageSize)}`,
      );
    }
    this.pageSize = pageSize;
    this.pageShift = 31 - Math.clz32(pageSize);
    this.maxFrame = Math.floor(2 ** 53 / pageSize);
    const cap = 1024;
    this.flags = new Uint8Array(cap);
    this.owner = new Uint8Array(cap);
    this.freeListOf = new Uint8Array(cap);
    this.nextRel = new Int32Array(cap);
    this.prevRel = new Int32Array(cap);
    this.freeMap = new Int32Array(cap >>> 5);
    this.fullMap = new Int32Array(cap >>> 10);
    this.fullSum = new Int32Array(1);
  }

  /**
   * Throws (changing nothing) unless `physload` would accept the segment:
   * integer frames with `start < end <= maxFrame`, `start <= availStart <=
   * availEnd <= end`, a known free list, no overlap with a loaded segment.
   */
  validate(
    start: number,
    end: number,
    availStart: number,
    availEnd: number,
    freeList: number,
  ): void {
    checkInteger("start", start, 0, this.maxFrame - 1);
    checkInteger("end", end, 0, this.maxFrame);
    if (start >= end) {
      throw new KernelError(
        "EINVAL",
        `physload: start ${describe(start)} must be below end ${describe(end)}`,
      );
    }
    checkInteger("avail_start", availStart, start, end);
    checkInteger("avail_end", availEnd, availStart, end);
    checkInteger("freelist", freeList, 0, VM_NFREELIST - 1);
    const pos = this.#insertPos(start);
    if (pos > 0 && this.segEnd[pos - 1]! > start) {
      throw new KernelError(
        "EINVAL",
        `physload: frames [${start}, ${end}) overlap segment [${this.segStart[pos - 1]}, ${
          this.segEnd[pos - 1]
        })`,
      );
    }
    if (pos < this.nsegs && this.segStart[pos]! < end) {
      throw new KernelError(
        "EINVAL",
        `physload: frames [${start}, ${end}) overlap segment [${this.segStart[pos]}, ${
          this.segEnd[pos]
        })`,
      );
    }
    const base = this.#baseFor(start);
    if (base + (end - start) > MAX_IDS) {
      throw new KernelError("ENOMEM", `physload: page array full (${end - start} more pages)`);
    }
  }

  /**
   * Adds the segment (see {@link validate}) and marks `[availStart, availEnd)`
   * free in the flags and the bitmap. Returns the segment's index in the
   * sorted table. The caller links the free pages into its queues.
   */
  plug(start: number, end: number, availStart: number, availEnd: number, freeList: number): number {
    this.validate(start, end, availStart, availEnd, freeList);
    const base = this.#baseFor(start);
    const n = end - start;
    this.#grow(base + n);
    this.#growSegs(this.nsegs + 1);
    const pos = this.#insertPos(start);
    for (let i = this.nsegs; i > pos; i--) {
      this.segStart[i] = this.segStart[i - 1]!;
      this.segEnd[i] = this.segEnd[i - 1]!;
      this.segAvailStart[i] = this.segAvailStart[i - 1]!;
      this.segAvailEnd[i] = this.segAvailEnd[i - 1]!;
      this.segHint[i] = this.segHint[i - 1]!;
      this.segIdOffset[i] = this.segIdOffset[i - 1]!;
      this.segFreeList[i] = this.segFreeList[i - 1]!;
    }
    this.segStart[pos] = start;
    this.segEnd[pos] = end;
    this.segAvailStart[pos] = availStart;
    this.segAvailEnd[pos] = availEnd;
    this.segHint[pos] = 0;
    this.segIdOffset[pos] = base - start;
    this.segFreeList[pos] = freeList;
    for (let l = 0; l < this.nsegs; l++) if (this.#loadSeg[l]! >= pos) this.#loadSeg[l]!++;
    this.#loadBase[this.nsegs] = base;
    this.#loadSeg[this.nsegs] = pos;
    let rank = 0;
    while (rank < this.nsegs && this.#sizeOfLoad(this.#bySize[rank]!) >= n) rank++;
    this.#bySize.copyWithin(rank + 1, rank, this.nsegs);
    this.#bySize[rank] = this.nsegs;
    this.nsegs++;
    this.#orderSearch();
    this.nids = base + n;
    this.freeListOf.fill(freeList, base, base + n);
    const a = base + (availStart - start);
    const b = base + (availEnd - start);
    this.flags.fill(PG_FREE, a, b);
    this.#markRangeFree(a, b);
    return pos;
  }

  /** `uvm_physseg_find`: index of the segment holding frame `pfn`, or -1. */
  find(pfn: number): number {
    let lo = 0;
    let hi = this.nsegs;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.segStart[mid]! <= pfn) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 && pfn < this.segEnd[lo - 1]! ? lo - 1 : -1;
  }

  /** Page id of frame `pfn`, or -1 when no segment holds it. */
  idOf(pfn: number): number {
    const s = this.find(pfn);
    return s < 0 ? -1 : (pfn + this.segIdOffset[s]!) | 0;
  }

  /** Index of the segment that page `id` belongs to, or -1 for a non-frame id. */
  segmentOfId(id: number): number {
    let lo = 0;
    let hi = this.nsegs;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#loadBase[mid]! <= id) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0) return -1;
    const s = this.#loadSeg[lo - 1]!;
    return id - this.segIdOffset[s]! < this.segEnd[s]! ? s : -1;
  }

  /** Frame number of page `id` (which must be a frame). */
  pfnOf(id: number): number {
    return id - this.segIdOffset[this.segmentOfId(id)]!;
  }

  /** A copy of segment `i`'s fields (0 <= i < nsegs). */
  segment(i: number): PhysSegInfo {
    checkInteger("segment", i, 0, this.nsegs - 1);
    return {
      start: this.segStart[i]!,
      end: this.segEnd[i]!,
      availStart: this.segAvailStart[i]!,
      availEnd: this.segAvailEnd[i]!,
      freeList: this.segFreeList[i]!,
      startHint: this.segHint[i]!,
    };
  }

  // ---- bitmap -------------------------------------------------------------

  /** Sets page `id`'s free bit (and the summaries). */
  markFree(id: number): void {
    const w = id >>> 5;
    const v = this.freeMap[w]! | (1 << (id & 31));
    this.freeMap[w] = v;
    if (v === -1) {
      this.fullMap[w >>> 5]! |= 1 << (w & 31);
      this.fullSum[w >>> 10]! |= 1 << ((w >>> 5) & 31);
    }
  }

  /** Clears page `id`'s free bit (and the summaries). */
  markBusy(id: number): void {
    const w = id >>> 5;
    const old = this.freeMap[w]!;
    this.freeMap[w] = old & ~(1 << (id & 31));
    if (old === -1) {
      const k = w >>> 5;
      const f = this.fullMap[k]! & ~(1 << (w & 31));
      this.fullMap[k] = f;
      if (f === 0) this.fullSum[k >>> 5]! &= ~(1 << (k & 31));
    }
  }

  /** Clears the free bits `bits` (all set) of bitmap word `w` (and the summaries). */
  markBusyBits(w: number, bits: number): void {
    const old = this.freeMap[w]!;
    this.freeMap[w] = old & ~bits;
    if (old === -1) {
      const k = w >>> 5;
      const f = this.fullMap[k]! & ~(1 << (w & 31));
      this.fullMap[k] = f;
      if (f === 0) this.fullSum[k >>> 5]! &= ~(1 << (k & 31));
    }
  }

  /** Sets the free bits `bits` (all clear) of bitmap word `w` (and the summaries). */
  markFreeBits(w: number, bits: number): void {
    const v = this.freeMap[w]! | bits;
    this.freeMap[w] = v;
    if (v === -1) {
      this.fullMap[w >>> 5]! |= 1 << (w & 31);
      this.fullSum[w >>> 10]! |= 1 << ((w >>> 5) & 31);
    }
  }

  /** Sets the free bits of ids `[a, b)` (all clear before; summaries too). */
  markFreeRange(a: number, b: number): void {
    let id = a;
    while (id < b) {
      const w = id >> 5;
      const stop = Math.min(b, w * 32 + 32);
      this.markFreeBits(w, (-1 << (id & 31)) & (-1 >>> (31 - ((stop - 1) & 31))));
      id = stop;
    }
  }

  /** Lowest free id in `[from, to)`, or -1. */
  findFree(from: number, to: number): number {
    if (from >= to) return -1;
    const map = this.freeMap;
    let w = from >>> 5;
    const last = (to - 1) >>> 5;
    let bits = map[w]! & (-1 << (from & 31));
    for (;;) {
      if (bits !== 0) {
        const id = w * 32 + ctz32(bits);
        return id < to ? id : -1;
      }
      if (w >= last) return -1;
      bits = map[++w]!;
    }
  }

  /** Lowest busy (not free) id in `[from, to)`, or -1. */
  findBusy(from: number, to: number): number {
    if (from >= to) return -1;
    const map = this.freeMap;
    let w = from >>> 5;
    const last = (to - 1) >>> 5;
    let bits = ~map[w]! & (-1 << (from & 31));
    for (;;) {
      if (bits !== 0) {
        const id = w * 32 + ctz32(bits);
        return id < to ? id : -1;
      }
      if (w >= last) return -1;
      bits = ~map[++w]!;
    }
  }

  /** Highest busy (not free) id in `[from, to)`, or -1. */
  lastBusy(from: number, to: number): number {
    if (from >= to) return -1;
    const map = this.freeMap;
    let w = (to - 1) >>> 5;
    const first = from >>> 5;
    let bits = ~map[w]! & (-1 >>> (31 - ((to - 1) & 31)));
    for (;;) {
      if (bits !== 0) {
        const id = w * 32 + 31 - Math.clz32(bits);
        return id >= from ? id : -1;
      }
      if (w <= first) return -1;
      bits = ~map[--w]!;
    }
  }

  /** Lowest bitmap word index in `[fromW, toW)` whose 32 pages are all free, or -1. */
  findFullWord(fromW: number, toW: number): number {
    if (fromW >= toW) return -1;
    const full = this.fullMap;
    const sum = this.fullSum;
    let k = fromW >>> 5;
    let bits = full[k]! & (-1 << (fromW & 31));
    for (;;) {
      if (bits !== 0) {
        const w = k * 32 + ctz32(bits);
        return w < toW ? w : -1;
      }
      k++;
      if (k * 32 >= toW) return -1;
      let j = k >>> 5;
      let s = sum[j]! & (-1 << (k & 31));
      while (s === 0) {
        j++;
        if (j * 1024 >= toW) return -1;
        s = sum[j]!;
      }
      k = j * 32 + ctz32(s);
      if (k * 32 >= toW) return -1;
      bits = full[k]!;
    }
  }

  /** Number of free ids in `[from, to)`. */
  countFree(from: number, to: number): number {
    if (from >= to) return 0;
    const map = this.freeMap;
    const first = from >>> 5;
    const last = (to - 1) >>> 5;
    let n = 0;
    for (let w = first; w <= last; w++) {
      let bits = map[w]!;
      if (w === first) bits &= -1 << (from & 31);
      if (w === last) bits &= -1 >>> (31 - ((to - 1) & 31));
      n += popcount32(bits);
    }
    return n;
  }

  /**
   * Verifies the invariants of the segment table and the bitmap (see the
   * module comment); throws an `EFAULT` {@link KernelError} naming the first
   * one broken. Cost O(pages).
   */
  check(): void {
    const fail = (what: string): never => {
      throw new KernelError("CORRUPT", `physseg check: ${what}`);
    };
    let prevEnd = -1;
    let ids = FIRST_PAGE_ID;
    for (let s = 0; s < this.nsegs; s++) {
      const start = this.segStart[s]!;
      const end = this.segEnd[s]!;
      const as = this.segAvailStart[s]!;
      const ae = this.segAvailEnd[s]!;
      if (!(start < end && start <= as && as <= ae && ae <= end)) fail(`segment ${s} bounds`);
      if (start < prevEnd) fail(`segment ${s} overlaps or is out of order`);
      prevEnd = end;
      const hint = this.segHint[s]!;
      if (!Number.isInteger(hint) || hint < 0 || hint > ae - as) {
        fail(`segment ${s} hint ${hint} outside [0, ${ae - as}]`);
      }
      const base = start + this.segIdOffset[s]!;
      if (((base - start) % 32 + 32) % 32 !== 0) fail(`segment ${s} ids not congruent to frames`);
      if (this.segmentOfId(base) !== s || this.segmentOfId(base + (end - start) - 1) !== s) {
        fail(`segment ${s} id lookup`);
      }
      if (this.find(start) !== s || this.find(end - 1) !== s) fail(`segment ${s} frame lookup`);
      ids = Math.max(ids, base + (end - start));
      for (let id = base; id < base + (end - start); id++) {
        if (this.freeListOf[id] !== this.segFreeList[s]) {
          fail(`page ${id - base + start} free list`);
        }
      }
    }
    if (ids !== this.nids) fail(`id count ${this.nids} != ${ids}`);
    const words = this.flags.length >>> 5;
    for (let w = 0; w < words; w++) {
      let expect = 0;
      for (let b = 0; b < 32; b++) {
        const id = w * 32 + b;
        const f = this.flags[id]!;
        if ((f & PG_FREE) !== 0) {
          if (this.segmentOfId(id) < 0) fail(`non-frame id ${id} is free`);
          if ((f & (PG_PGLCA | PG_PGLIST)) !== 0) fail(`free page id ${id} is also held`);
          expect |= 1 << b;
        }
      }
      if (this.freeMap[w] !== expect) fail(`bitmap word ${w} disagrees with the flags`);
      const full = (this.fullMap[w >>> 5]! >>> (w & 31)) & 1;
      if (full !== (expect === -1 ? 1 : 0)) fail(`full-word bit of word ${w}`);
    }
    for (let k = 0; k < this.fullMap.length; k++) {
      const bit = (this.fullSum[k >>> 5]! >>> (k & 31)) & 1;
      if (bit !== (this.fullMap[k] !== 0 ? 1 : 0)) fail(`summary bit ${k}`);
    }
  }

  // ---- internals ----------------------------------------------------------

  /** Whole-segment size (`end - start`) of the segment loaded `l`-th. */
  #sizeOfLoad(l: number): number {
    const s = this.#loadSeg[l]!;
    return this.segEnd[s]! - this.segStart[s]!;
  }

  /** Rebuilds {@link searchOrder} after a load. */
  #orderSearch(): void {
    let k = 0;
    for (let fl = 0; fl < VM_NFREELIST; fl++) {
      if (this.strategy === "bsearch") {
        for (let s = 0; s < this.nsegs; s++) {
          if (this.segFreeList[s] === fl) this.searchOrder[k++] = s;
        }
      } else {
        // uvm_physseg_get_last() back to the first: smallest first.
        for (let r = this.nsegs - 1; r >= 0; r--) {
          const s = this.#loadSeg[this.#bySize[r]!]!;
          if (this.segFreeList[s] === fl) this.searchOrder[k++] = s;
        }
      }
    }
  }

  #insertPos(start: number): number {
    let lo = 0;
    let hi = this.nsegs;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.segStart[mid]! < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First id of a segment starting at `start`: past a gap, congruent to `start` mod 32. */
  #baseFor(start: number): number {
    return Math.ceil((this.nids + 1) / 32) * 32 + (start % 32);
  }

  #grow(needed: number): void {
    const cap = this.flags.length;
    if (needed <= cap) return;
    let next = Math.max(needed, Math.floor(cap * 1.25));
    next = Math.ceil(next / 1024) * 1024;
    const grow8 = (a: Uint8Array) => {
      const b = new Uint8Array(next);
      b.set(a);
      return b;
    };
    const grow32 = (a: Int32Array, n: number) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.flags = grow8(this.flags);
    this.owner = grow8(this.owner);
    this.freeListOf = grow8(this.freeListOf);
    this.nextRel = grow32(this.nextRel, next);
    this.prevRel = grow32(this.prevRel, next);
    this.freeMap = grow32(this.freeMap, next >>> 5);
    this.fullMap = grow32(this.fullMap, next >>> 10);
    this.fullSum = grow32(this.fullSum, Math.ceil((next >>> 10) / 32));
  }

  #growSegs(needed: number): void {
    if (needed <= this.segStart.length) return;
    const n = this.segStart.length * 2;
    const f = (a: Float64Array) => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    const i = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.segStart = f(this.segStart);
    this.segEnd = f(this.segEnd);
    this.segAvailStart = f(this.segAvailStart);
    this.segAvailEnd = f(this.segAvailEnd);
    this.segHint = f(this.segHint);
    this.segIdOffset = f(this.segIdOffset);
    this.segFreeList = i(this.segFreeList);
    this.#loadBase = f(this.#loadBase);
    this.#loadSeg = i(this.#loadSeg);
    this.#bySize = i(this.#bySize);
    this.searchOrder = i(this.searchOrder);
  }

  /** Sets the free bits of ids `[a, b)` (fresh ids, all clear before). */
  #markRangeFree(a: number, b: number): void {
    if (a >= b) return;
    const map = this.freeMap;
    const first = a >>> 5;
    const last = (b - 1) >>> 5;
    if (first === last) {
      map[first]! |= (-1 << (a & 31)) & (-1 >>> (31 - ((b - 1) & 31)));
    } else {
      map[first]! |= -1 << (a & 31);
      map.fill(-1, first + 1, last);
      map[last]! |= -1 >>> (31 - ((b - 1) & 31));
    }
    for (let w = first; w <= last; w++) {
      if (map[w] === -1) {
        this.fullMap[w >>> 5]! |= 1 << (w & 31);
        this.fullSum[w >>> 10]! |= 1 << ((w >>> 5) & 31);
      }
    }
  }
}

/** `x mod 2^32` for an integer `x` (what a `u_int` keeps of it). */
export function u32(x: number): number {
  return x >>> 0;
}
