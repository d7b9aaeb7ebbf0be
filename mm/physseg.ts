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
 * NetBSD keeps its array largest first and walks it from the end.
 *
 * Every frame of a segment gets a page id. Ids are handed out in load order
 * in chunks of {@link CHUNK_PAGES}: a segment's ids start 32 ids or more into
 * a fresh chunk (so the ids of two segments are never adjacent), congruent to
 * its first frame modulo 32 (so a 32-bit bitmap word covers 32 frames
 * aligned on a multiple of 32), and no chunk holds two segments. Only
 * loaded frames cost ids, wherever a segment sits (frames may go up to
 * `2^53 / pageSize`). Chunk 0 holds no frames: its ids 0 to 5 head the six
 * free-page queues of {@link Uvm}.
 *
 * A guest costs the host what it touches, as Linux's deferred struct-page
 * initialisation has it: every per-page value is stored so that zero is the
 * state of a page of a fresh segment, and a chunk's per-page arrays are made
 * on its first write, so loading a segment costs O(its chunks), not O(its
 * pages). Per chunk (structure of arrays, indexed by id within the chunk):
 * `flags` ({@link PG_PGLCA}, {@link PG_PGLIST}), `owner` (a byte the kernel
 * keeps on an allocated page) and the free-queue links `next`, `prev`,
 * stored relative to the page (`next = id - 1 + rel`), so that zeros chain a
 * fresh segment's pages from the highest down. Until its first write a chunk
 * shares one all-zero array per kind ({@link PhysMem.zero8},
 * {@link PhysMem.zero64}); its free list and frames follow from its segment.
 * One flat bitmap has a bit per id, set when the page is busy (not free), so
 * that zeros say "free"; the frames outside a segment's avail range are
 * marked busy when it loads (cost: those frames / 32). Two summary levels
 * make long-run searches cheap: bit `w` of `partMap` is set when bitmap word
 * `w` is not zero (some page busy), bit `k` of `partSum` when `partMap[k]`
 * is all ones.
 *
 * What differs from a fresh segment is tracked in blocks of
 * {@link BLOCK_PAGES} ids, 32 to a chunk: a chunk's dirty mask has a bit set
 * for each block anything wrote since its segment loaded (a per-page value or
 * a bitmap bit), and for the blocks that hold ids that are no frames (a
 * segment's first and last blocks). A clean block is a stretch of free pages
 * of one segment, wholly inside its avail range, chained in descending
 * order, or a stretch of ids past its segment's end that nothing uses;
 * checks take it as such without reading it. A chunk's per-page arrays exist
 * ({@link TOUCHED}) only once a value other than zero was written in it.
 *
 * Invariants (verified by {@link PhysMem.check}): segments sorted and
 * disjoint, hints within their segments, every chunk owned by the segment its
 * ids belong to, clean blocks as described, ids that are not frames never
 * written, free pages with no flags and no owner, both summary levels
 * agreeing with the bitmap.
 *
 * Cost: `physload` is O(segments + chunks of the segment + frames outside its
 * avail range / 32), plus copying the touched part of the bitmap when it
 * grows; `find` is O(log segments), `segmentOfId` and `pfnOf` O(1); bitmap
 * searches look at one word per 32 pages, and {@link PhysMem.findFullWord} at
 * one summary word per 32768 pages; a check costs O(chunks + pages of the
 * blocks written), or O(pages) when exhaustive.
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

/** Page flag: the page is free, on the queue of its free list (reported, never stored). */
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

/** Page ids per chunk: the unit in which the page array is set up on first touch. */
export const CHUNK_PAGES = 65536;
const CHUNK_MASK = CHUNK_PAGES - 1;
const CHUNK_WORDS = CHUNK_PAGES / 32;
/** Chunk state: the chunk's per-page arrays exist. */
export const TOUCHED = 1;
/** Page ids per block: the unit in which writes are tracked (32 blocks to a chunk). */
export const BLOCK_PAGES = 2048;
const BLOCK_SHIFT = 11;
/** Ids stay below this (2^30 bitmap words). */
const MAX_IDS = 2 ** 35;

/** The chunk holding page id `id` (any id below 2^47; a shift below 2^32). */
export function chunkOf(id: number): number {
  return id < 4294967296 ? id >>> 16 : Math.floor(id / CHUNK_PAGES);
}

/** The bitmap word holding page id `id` (any id below 2^36; a shift below 2^32). */
function wordOf(id: number): number {
  return id < 4294967296 ? id >>> 5 : Math.floor(id / 32);
}

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

/** The bits of a word for ids `[a, b)` of that word (`a < b`, both in the word's 32). */
function bitsOf(a: number, b: number): number {
  return (-1 << (a & 31)) & (-1 >>> (31 - ((b - 1) & 31)));
}

/** The dirty-mask bits of the blocks holding chunk offsets `[i, j)` (`i < j`). */
function blocksOf(i: number, j: number): number {
  const lo = i >>> BLOCK_SHIFT;
  const hi = (j - 1) >>> BLOCK_SHIFT;
  return (-1 << lo) & (-1 >>> (31 - hi));
}

/**
 * The physical segments and the page array behind them. {@link Uvm} owns one
 * and keeps the free queues in its link arrays. It belongs to this folder's
 * allocators (the package does not export it), which use its arrays
 * directly; the bitmap arrays are replaced when a physload grows them, so
 * never keep one across a physload.
 */
export class PhysMem {
  /** Bytes per page. */
  readonly pageSize: number;
  /** `log2(pageSize)`. */
  readonly pageShift: number;
  /** Highest frame number (exclusive) that a segment may reach. */
  readonly maxFrame: number;
  /** The order segments are searched in (see {@link PhysSegStrategy}). */
  readonly strategy: PhysSegStrategy;

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
  /**
   * Indices into the segment table in the order `uvm_pglistalloc` searches
   * them: free list 0 first, then by {@link strategy} within each list.
   */
  searchOrder: Int32Array = new Int32Array(4);

  /** Per load: `id - pfn` of the segment loaded n-th. */
  #loadOffset: Float64Array = new Float64Array(4);
  /** Per load: its free list. */
  #loadFreeList: Int32Array = new Int32Array(4);
  /** Per load: the segment's current index in the sorted table. */
  #loadSeg: Int32Array = new Int32Array(4);
  /**
   * Load numbers sorted by whole-segment size, largest first, a segment
   * after every one of its size (`uvm_physseg_plug` under BIGFIRST).
   */
  #bySize: Int32Array = new Int32Array(4);

  /** One past the highest id in use. */
  nids = 6;
  /** Chunks in use (the next segment's ids start in chunk `nchunks`). */
  nchunks = 1;
  /** Per chunk: the load number of the segment it holds, or -1. */
  chunkLoad: Int32Array = new Int32Array(64).fill(-1);
  /** Per chunk: {@link TOUCHED} once its per-page arrays exist. */
  chunkState: Uint8Array = new Uint8Array(64);
  /** Per chunk: bit `b` set when block `b` ({@link BLOCK_PAGES} ids) was written. */
  chunkDirty: Int32Array = new Int32Array(64);
  /** Per chunk: page flags by id within the chunk ({@link zero8} until touched). */
  readonly flags: Uint8Array[] = [];
  /** Per chunk: owner bytes by id within the chunk ({@link zero8} until touched). */
  readonly owner: Uint8Array[] = [];
  /** Per chunk: queue links, `next = id - 1 + rel` ({@link zero64} until touched). */
  readonly next: Float64Array[] = [];
  /** Per chunk: queue links, `prev = id + 1 + rel` ({@link zero64} until touched). */
  readonly prev: Float64Array[] = [];
  /** The bytes every untouched chunk shares: all zero, never written. */
  readonly zero8: Uint8Array = new Uint8Array(CHUNK_PAGES);
  /** The links every untouched chunk shares: all zero, never written. */
  readonly zero64: Float64Array = new Float64Array(CHUNK_PAGES);

  /** Busy-page bitmap by id: a bit is set when the page is not free. */
  busyMap: Int32Array = new Int32Array(CHUNK_WORDS);
  /** Bit per bitmap word: the word is not zero. */
  partMap: Int32Array = new Int32Array(CHUNK_WORDS / 32);
  /** Bit per `partMap` word: that word is all ones. */
  partSum: Int32Array = new Int32Array(CHUNK_WORDS / 1024);

  /**
   * Creates an empty page array for pages of `pageSize` bytes (a power of
   * two), whose segments are searched in the order `strategy` says.
   */
  constructor(pageSize?: number, strategy?: PhysSegStrategy) {
    if (pageSize === undefined) pageSize = 4096;
    if (strategy === undefined) strategy = "bsearch";
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
    // Chunk 0 holds the queue heads: small arrays of its own.
    this.flags.push(new Uint8Array(32));
    this.owner.push(new Uint8Array(32));
    this.next.push(new Float64Array(32));
    this.prev.push(new Float64Array(32));
    this.chunkState[0] = TOUCHED;
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
    if (this.#baseFor(start) + (end - start) > MAX_IDS) {
      throw new KernelError("ENOMEM", `physload: page array full (${end - start} more pages)`);
    }
  }

  /** Page ids a segment of `n` frames starting at `start` would take, gaps included. */
  idsFor(start: number, n: number): number {
    return (chunkOf(32 + start % 32 + n - 1) + 1) * CHUNK_PAGES;
  }

  /**
   * Makes room for `ids` more page ids than are in use (a caller about to
   * load several segments saves the bitmap's regrowth that way).
   */
  reserve(ids: number): void {
    checkInteger("ids", ids);
    const total = this.nchunks * CHUNK_PAGES + ids;
    if (total > MAX_IDS) {
      throw new KernelError("ENOMEM", `physload: page array full (${ids} more page ids)`);
    }
    this.#growWords(Math.ceil(total / CHUNK_PAGES) * CHUNK_WORDS);
  }

  /**
   * Adds the segment (see {@link validate}): its ids, its chunks, and the
   * frames outside `[availStart, availEnd)` marked busy; the others are free
   * as they stand. Returns the segment's index in the sorted table. The
   * caller links the free pages into its queues.
   */
  plug(start: number, end: number, availStart: number, availEnd: number, freeList: number): number {
    this.validate(start, end, availStart, availEnd, freeList);
    const base = this.#baseFor(start);
    const n = end - start;
    const load = this.nsegs;
    const first = chunkOf(base);
    const last = chunkOf(base + n - 1);
    this.#growChunks(last + 1);
    this.#growWords((last + 1) * CHUNK_WORDS);
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
    for (let l = 0; l < load; l++) if (this.#loadSeg[l]! >= pos) this.#loadSeg[l]!++;
    this.#loadOffset[load] = base - start;
    this.#loadFreeList[load] = freeList;
    this.#loadSeg[load] = pos;
    let rank = 0;
    while (rank < load && this.#sizeOfLoad(this.#bySize[rank]!) >= n) rank++;
    this.#bySize.copyWithin(rank + 1, rank, load);
    this.#bySize[rank] = load;
    this.nsegs++;
    this.#orderSearch();
    for (let c = first; c <= last; c++) {
      this.chunkLoad[c] = load;
      this.flags.push(this.zero8);
      this.owner.push(this.zero8);
      this.next.push(this.zero64);
      this.prev.push(this.zero64);
    }
    // The end blocks hold ids that are no frames: never taken for clean.
    this.#dirty(base);
    this.#dirty(base + n - 1);
    this.nchunks = last + 1;
    this.nids = base + n;
    this.markBusyRange(base, base + (availStart - start));
    this.markBusyRange(base + (availEnd - start), base + n);
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
    return s < 0 ? -1 : pfn + this.segIdOffset[s]!;
  }

  /** Index of the segment that page `id` belongs to, or -1 for an id that is no frame. */
  segmentOfId(id: number): number {
    if (!(id >= 0 && id < this.nids)) return -1;
    const l = this.chunkLoad[chunkOf(id)]!;
    if (l < 0) return -1;
    const s = this.#loadSeg[l]!;
    const pfn = id - this.#loadOffset[l]!;
    return pfn >= this.segStart[s]! && pfn < this.segEnd[s]! ? s : -1;
  }

  /** Frame number of page `id` (which must be a frame). */
  pfnOf(id: number): number {
    return id - this.#loadOffset[this.chunkLoad[chunkOf(id)]!]!;
  }

  /** Free list of page `id` (which must be a frame). */
  freeListOf(id: number): number {
    return this.#loadFreeList[this.chunkLoad[chunkOf(id)]!]!;
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

  // ---- per-page values ------------------------------------------------------

  /**
   * Gives chunk `c` (of a segment) per-page arrays of its own, zero as the
   * shared ones read, long enough for its last frame.
   */
  touch(c: number): void {
    if ((this.chunkState[c]! & TOUCHED) !== 0) return;
    const l = this.chunkLoad[c]!;
    const s = this.#loadSeg[l]!;
    const len = Math.min(CHUNK_PAGES, this.segEnd[s]! + this.#loadOffset[l]! - c * CHUNK_PAGES);
    this.flags[c] = new Uint8Array(len);
    this.owner[c] = new Uint8Array(len);
    this.next[c] = new Float64Array(len);
    this.prev[c] = new Float64Array(len);
    this.chunkState[c] = TOUCHED;
  }

  /** The flags of page `id`. */
  flagsOf(id: number): number {
    return this.flags[chunkOf(id)]![id & CHUNK_MASK]!;
  }

  /** Sets the flags of page `id`. */
  setFlags(id: number, f: number): void {
    this.#storeByte(this.flags, id, f);
  }

  /** The owner byte of page `id`. */
  ownerOf(id: number): number {
    return this.owner[chunkOf(id)]![id & CHUNK_MASK]!;
  }

  /** Sets the owner byte of page `id`. */
  setOwner(id: number, o: number): void {
    this.#storeByte(this.owner, id, o);
  }

  /**
   * Stores byte `v` for page `id` in `arrays` (the flags or the owners): a
   * zero in a chunk nothing wrote is there already; anything else sets the
   * chunk up. (Bytes and links go through two functions, each storing into
   * one kind of typed array, which a JIT compiles to a plain store.)
   */
  #storeByte(arrays: Uint8Array[], id: number, v: number): void {
    const c = chunkOf(id);
    if ((this.chunkState[c]! & TOUCHED) === 0) {
      if (v === 0) return;
      this.touch(c);
    }
    arrays[c]![id & CHUNK_MASK] = v;
    this.chunkDirty[c]! |= 1 << ((id & CHUNK_MASK) >>> BLOCK_SHIFT);
  }

  /** Stores the relative link `rel` for page `id` in `arrays` (next or prev), as {@link #storeByte}. */
  #storeLink(arrays: Float64Array[], id: number, rel: number): void {
    const c = chunkOf(id);
    if ((this.chunkState[c]! & TOUCHED) === 0) {
      if (rel === 0) return;
      this.touch(c);
    }
    arrays[c]![id & CHUNK_MASK] = rel;
    this.chunkDirty[c]! |= 1 << ((id & CHUNK_MASK) >>> BLOCK_SHIFT);
  }

  /** Sets the flags of ids `[a, b)` (frames of one segment) to `f`. */
  setFlagsRun(a: number, b: number, f: number): void {
    this.#fillBytes(this.flags, a, b, f);
  }

  /** Sets the owner bytes of ids `[a, b)` (frames of one segment, allocated) to `o`. */
  setOwnerRun(a: number, b: number, o: number): void {
    this.#fillBytes(this.owner, a, b, o);
  }

  /** Sets the bytes of ids `[a, b)` in `arrays` (the flags or the owners) to `v`. */
  #fillBytes(arrays: Uint8Array[], a: number, b: number, v: number): void {
    let id = a;
    while (id < b) {
      const c = chunkOf(id);
      const stop = Math.min(b, (c + 1) * CHUNK_PAGES);
      if ((this.chunkState[c]! & TOUCHED) === 0) {
        if (v === 0) {
          id = stop;
          continue;
        }
        this.touch(c);
      }
      const i = id & CHUNK_MASK;
      const j = i + (stop - id);
      this.chunkDirty[c]! |= blocksOf(i, j);
      const bytes = arrays[c]!;
      if (j - i >= 64) bytes.fill(v, i, j);
      else for (let k = i; k < j; k++) bytes[k] = v;
      id = stop;
    }
  }

  /**
   * Makes ids `[a, b)` (frames of one segment) read as fresh pages again: no
   * flags, no owner, linked `b-1 -> ... -> a` by zeros. The caller links
   * `b-1`'s previous page and `a`'s next page. With `linked`, the caller
   * knows the ids to be linked so already (taken off a queue as that chain,
   * their own links untouched since), and only flags and owners are cleared:
   * the links are half the bytes to write, and of the `prev` ones the take
   * read only the top page's, so writing them would bring their cache lines in.
   */
  freshenRun(a: number, b: number, linked: boolean): void {
    let id = a;
    while (id < b) {
      const c = chunkOf(id);
      const stop = Math.min(b, (c + 1) * CHUNK_PAGES);
      if ((this.chunkState[c]! & TOUCHED) !== 0) {
        const i = id & CHUNK_MASK;
        const j = i + (stop - id);
        this.chunkDirty[c]! |= blocksOf(i, j);
        const fl = this.flags[c]!;
        const ow = this.owner[c]!;
        const nx = this.next[c]!;
        const pv = this.prev[c]!;
        // next of a + 1 .. b - 1, prev of a .. b - 2
        const n0 = id === a ? i + 1 : i;
        const p1 = stop === b ? j - 1 : j;
        if (j - i >= 64) {
          fl.fill(0, i, j);
          ow.fill(0, i, j);
          if (!linked) {
            nx.fill(0, n0, j);
            pv.fill(0, i, p1);
          }
        } else {
          for (let k = i; k < j; k++) {
            fl[k] = 0;
            ow[k] = 0;
          }
          if (!linked) {
            for (let k = n0; k < j; k++) nx[k] = 0;
            for (let k = i; k < p1; k++) pv[k] = 0;
          }
        }
      }
      id = stop;
    }
  }

  /** The page after `id` on its queue. */
  nextOf(id: number): number {
    return id - 1 + this.next[chunkOf(id)]![id & CHUNK_MASK]!;
  }

  /** The page before `id` on its queue. */
  prevOf(id: number): number {
    return id + 1 + this.prev[chunkOf(id)]![id & CHUNK_MASK]!;
  }

  /** Links `id` to `to` as its next page. */
  setNext(id: number, to: number): void {
    this.#storeLink(this.next, id, to - id + 1);
  }

  /** Links `id` to `to` as its previous page. */
  setPrev(id: number, to: number): void {
    this.#storeLink(this.prev, id, to - id - 1);
  }

  /**
   * Makes ids `[a, b)` (frames of one segment) free pages linked upward,
   * `a -> a + 1 -> ... -> b - 1`, with no flags and no owner. The caller links
   * `a`'s previous page and `b-1`'s next page.
   */
  ascendRun(a: number, b: number): void {
    let id = a;
    while (id < b) {
      const c = chunkOf(id);
      const stop = Math.min(b, (c + 1) * CHUNK_PAGES);
      this.touch(c);
      const i = id & CHUNK_MASK;
      const j = i + (stop - id);
      this.chunkDirty[c]! |= blocksOf(i, j);
      this.flags[c]!.fill(0, i, j);
      this.owner[c]!.fill(0, i, j);
      // next = id + 1 (relative 2) but for b - 1; prev = id - 1 (-2) but for a.
      this.next[c]!.fill(2, i, stop === b ? j - 1 : j);
      this.prev[c]!.fill(-2, id === a ? i + 1 : i, j);
      id = stop;
    }
  }

  /**
   * Gives page `id` the queue neighbours `next` and `prev`, no flags and no
   * owner: what a page freed onto a queue carries (one chunk look-up).
   */
  relink(id: number, next: number, prev: number): void {
    const c = chunkOf(id);
    const rn = next - id + 1;
    const rp = prev - id - 1;
    if ((this.chunkState[c]! & TOUCHED) === 0) {
      if (rn === 0 && rp === 0) return;
      this.touch(c);
    }
    const i = id & CHUNK_MASK;
    this.next[c]![i] = rn;
    this.prev[c]![i] = rp;
    this.flags[c]![i] = 0;
    this.owner[c]![i] = 0;
    this.chunkDirty[c]! |= 1 << (i >>> BLOCK_SHIFT);
  }

  /**
   * How many pages, at most `max`, form a chain down from `top` on its queue
   * (`top`, `top - 1`, ... each the next of the one before).
   */
  chainLength(top: number, max: number): number {
    let n = 1;
    let id = top;
    while (n < max) {
      const c = chunkOf(id);
      const lo = c * CHUNK_PAGES;
      if ((this.chunkState[c]! & TOUCHED) === 0) {
        // Zeros all the way down to the chunk's first id.
        const more = Math.min(max - n, id - lo);
        n += more;
        id -= more;
        if (id !== lo || n >= max) continue;
      } else {
        const nx = this.next[c]!;
        while (n < max && id > lo && nx[id - lo] === 0) {
          id--;
          n++;
        }
        if (id !== lo || n >= max) break;
      }
      // At the chunk's first id: does the chain go on into the chunk below?
      if (this.nextOf(id) !== id - 1) break;
      id--;
      n++;
    }
    return n;
  }

  /** True when ids `(a, b)` each link to the id below them: `[a, b)` is a chain. */
  isChain(a: number, b: number): boolean {
    let id = a + 1;
    while (id < b) {
      const c = chunkOf(id);
      const stop = Math.min(b, (c + 1) * CHUNK_PAGES);
      if ((this.chunkState[c]! & TOUCHED) !== 0) {
        const nx = this.next[c]!;
        for (let k = id & CHUNK_MASK, j = k + (stop - id); k < j; k++) {
          if (nx[k] !== 0) return false;
        }
      }
      id = stop;
    }
    return true;
  }

  // ---- bitmap -------------------------------------------------------------

  /** True when page `id` (a frame) is free. */
  isFreeId(id: number): boolean {
    return (this.busyMap[wordOf(id)]! & (1 << (id & 31))) === 0;
  }

  /** Marks page `id` busy (and the summaries). */
  markBusy(id: number): void {
    this.markBusyBits(wordOf(id), 1 << (id & 31));
  }

  /** Marks page `id` free (and the summaries). */
  markFree(id: number): void {
    this.markFreeBits(wordOf(id), 1 << (id & 31));
  }

  /** Marks the pages `bits` (all free) of bitmap word `w` busy (and the summaries). */
  markBusyBits(w: number, bits: number): void {
    this.chunkDirty[w >>> 11]! |= 1 << ((w >>> 6) & 31);
    const old = this.busyMap[w]!;
    this.busyMap[w] = old | bits;
    if (old === 0) {
      const k = w >>> 5;
      const p = this.partMap[k]! | (1 << (w & 31));
      this.partMap[k] = p;
      if (p === -1) this.partSum[k >>> 5]! |= 1 << (k & 31);
    }
  }

  /** Marks the pages `bits` (all busy) of bitmap word `w` free (and the summaries). */
  markFreeBits(w: number, bits: number): void {
    this.chunkDirty[w >>> 11]! |= 1 << ((w >>> 6) & 31);
    const v = this.busyMap[w]! & ~bits;
    this.busyMap[w] = v;
    if (v === 0) {
      const k = w >>> 5;
      const p = this.partMap[k]!;
      if (p === -1) this.partSum[k >>> 5]! &= ~(1 << (k & 31));
      this.partMap[k] = p & ~(1 << (w & 31));
    }
  }

  /** Marks ids `[a, b)` busy (and the summaries). */
  markBusyRange(a: number, b: number): void {
    this.#markRange(a, b, true);
  }

  /** Marks ids `[a, b)` (all busy) free (and the summaries). */
  markFreeRange(a: number, b: number): void {
    this.#markRange(a, b, false);
  }

  /** Marks ids `[a, b)` busy or free a bitmap word at a time. */
  #markRange(a: number, b: number, busy: boolean): void {
    if (a >= b) return;
    let w = wordOf(a);
    const lastW = wordOf(b - 1);
    if (w === lastW) {
      if (busy) this.markBusyBits(w, bitsOf(a, b));
      else this.markFreeBits(w, bitsOf(a, b));
      return;
    }
    const head = -1 << (a & 31);
    const tail = -1 >>> (31 - ((b - 1) & 31));
    if (busy) {
      this.markBusyBits(w, head);
      for (w++; w < lastW; w++) this.markBusyBits(w, -1);
      this.markBusyBits(lastW, tail);
    } else {
      this.markFreeBits(w, head);
      for (w++; w < lastW; w++) this.markFreeBits(w, -1);
      this.markFreeBits(lastW, tail);
    }
  }

  /** Lowest free id in `[from, to)`, or -1. */
  findFree(from: number, to: number): number {
    if (from >= to) return -1;
    const map = this.busyMap;
    let w = wordOf(from);
    const last = wordOf(to - 1);
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

  /** Lowest busy (not free) id in `[from, to)`, or -1. */
  findBusy(from: number, to: number): number {
    if (from >= to) return -1;
    const map = this.busyMap;
    let w = wordOf(from);
    const last = wordOf(to - 1);
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

  /** Highest busy (not free) id in `[from, to)`, or -1. */
  lastBusy(from: number, to: number): number {
    if (from >= to) return -1;
    const map = this.busyMap;
    let w = wordOf(to - 1);
    const first = wordOf(from);
    let bits = map[w]! & (-1 >>> (31 - ((to - 1) & 31)));
    for (;;) {
      if (bits !== 0) {
        const id = w * 32 + 31 - Math.clz32(bits);
        return id >= from ? id : -1;
      }
      if (w <= first) return -1;
      bits = map[--w]!;
    }
  }

  /** Lowest bitmap word index in `[fromW, toW)` whose 32 pages are all free, or -1. */
  findFullWord(fromW: number, toW: number): number {
    if (fromW >= toW) return -1;
    const part = this.partMap;
    const sum = this.partSum;
    let k = fromW >>> 5;
    let bits = ~part[k]! & (-1 << (fromW & 31));
    for (;;) {
      if (bits !== 0) {
        const w = k * 32 + ctz32(bits);
        return w < toW ? w : -1;
      }
      k++;
      if (k * 32 >= toW) return -1;
      let j = k >>> 5;
      let s = ~sum[j]! & (-1 << (k & 31));
      while (s === 0) {
        j++;
        if (j * 1024 >= toW) return -1;
        s = ~sum[j]!;
      }
      k = j * 32 + ctz32(s);
      if (k * 32 >= toW) return -1;
      bits = ~part[k]!;
    }
  }

  /** Number of free ids in `[from, to)`. */
  countFree(from: number, to: number): number {
    if (from >= to) return 0;
    const map = this.busyMap;
    const first = wordOf(from);
    const last = wordOf(to - 1);
    let n = 0;
    for (let w = first; w <= last; w++) {
      let bits = ~map[w]!;
      if (w === first) bits &= -1 << (from & 31);
      if (w === last) bits &= -1 >>> (31 - ((to - 1) & 31));
      n += popcount32(bits);
    }
    return n;
  }

  /** Free frames in chunk `c`: all its frames when nothing wrote it, else by the bitmap. */
  freeInChunk(c: number): number {
    const l = this.chunkLoad[c]!;
    if (l < 0) return 0;
    const s = this.#loadSeg[l]!;
    const off = this.#loadOffset[l]!;
    const a = Math.max(c * CHUNK_PAGES, this.segStart[s]! + off);
    const b = Math.min((c + 1) * CHUNK_PAGES, this.segEnd[s]! + off);
    return this.chunkDirty[c] === 0 ? b - a : this.countFree(a, b);
  }

  /**
   * The free frames of every segment as runs `[firstPfn, count]`, ascending,
   * runs of adjacent segments merged. Untouched chunks cost one step each.
   */
  freeRuns(): [number, number][] {
    const out: [number, number][] = [];
    const add = (pfn: number, n: number) => {
      const last = out[out.length - 1];
      if (last !== undefined && last[0] + last[1] === pfn) last[1] += n;
      else out.push([pfn, n]);
    };
    for (let s = 0; s < this.nsegs; s++) {
      const off = this.segIdOffset[s]!;
      const end = this.segEnd[s]! + off;
      let id = this.segStart[s]! + off;
      while (id < end) {
        const c = chunkOf(id);
        const stop = Math.min(end, (c + 1) * CHUNK_PAGES);
        if (this.chunkDirty[c] === 0) {
          add(id - off, stop - id);
          id = stop;
          continue;
        }
        const f = this.findFree(id, stop);
        if (f < 0) {
          id = stop;
          continue;
        }
        const b = this.findBusy(f, stop);
        const e = b < 0 ? stop : b;
        add(f - off, e - f);
        id = e;
      }
    }
    return out;
  }

  /**
   * Verifies the invariants of the segment table, the chunks and the bitmap
   * (see the module comment); throws a `CORRUPT` {@link KernelError} naming
   * the first one broken. Costs O(segments + chunks + touched pages); with
   * `exhaustive`, it also reads every untouched chunk (O(pages)).
   */
  check(exhaustive?: boolean): void {
    if (exhaustive === undefined) exhaustive = false;
    const fail = (what: string): never => {
      throw new KernelError("CORRUPT", `physseg check: ${what}`);
    };
    if (exhaustive) {
      for (let i = 0; i < CHUNK_PAGES; i++) {
        if (this.zero8[i] !== 0 || this.zero64[i] !== 0) fail("a shared zero array was written");
      }
    }
    let prevEnd = -1;
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
      for (let c = chunkOf(base), last = chunkOf(base + (end - start) - 1); c <= last; c++) {
        const l = this.chunkLoad[c]!;
        if (l < 0 || this.#loadSeg[l] !== s) fail(`chunk ${c} is not segment ${s}'s`);
        if (this.#loadOffset[l] !== this.segIdOffset[s]) fail(`chunk ${c} id offset`);
        if (this.#loadFreeList[l] !== this.segFreeList[s]) fail(`chunk ${c} free list`);
      }
    }
    const order = new Set<number>();
    for (let k = 0; k < this.nsegs; k++) order.add(this.searchOrder[k]!);
    if (order.size !== this.nsegs) fail("the search order misses a segment");
    for (let k = 1; k < this.nsegs; k++) {
      if (this.segFreeList[this.searchOrder[k]!]! < this.segFreeList[this.searchOrder[k - 1]!]!) {
        fail("the search order is not by free list");
      }
    }
    if (this.flags.length !== this.nchunks || this.next.length !== this.nchunks) {
      fail(`${this.flags.length} chunk arrays for ${this.nchunks} chunks`);
    }
    for (let c = 1; c < this.nchunks; c++) this.#checkChunk(c, exhaustive, fail);
    for (let c = this.nchunks; c < this.chunkLoad.length; c++) {
      if (this.chunkLoad[c] !== -1 || this.chunkState[c] !== 0 || this.chunkDirty[c] !== 0) {
        fail(`unused chunk ${c} in use`);
      }
    }
  }

  /**
   * Checks chunk `c`: its segment's frames, its per-page arrays and its
   * bitmap words, in the blocks something wrote; `exhaustive` also reads the
   * clean blocks and the ids that are no frames.
   */
  #checkChunk(c: number, exhaustive: boolean, fail: (what: string) => never): void {
    const touched = (this.chunkState[c]! & TOUCHED) !== 0;
    const dirty = this.chunkDirty[c]!;
    const l = this.chunkLoad[c]!;
    const lo = c * CHUNK_PAGES;
    const hi = lo + CHUNK_PAGES;
    // Frames [a, b), free at load [as, ae); ids outside [a, b) are no frames.
    let a = lo, b = lo, as = lo, ae = lo;
    if (l >= 0) {
      const s = this.#loadSeg[l]!;
      const off = this.#loadOffset[l]!;
      a = Math.max(lo, this.segStart[s]! + off);
      b = Math.min(hi, this.segEnd[s]! + off);
      as = Math.max(a, this.segAvailStart[s]! + off);
      ae = Math.min(b, this.segAvailEnd[s]! + off);
    } else if (touched || dirty !== 0) {
      fail(`chunk ${c} holds no segment but was written`);
    }
    const fl = this.flags[c]!;
    const ow = this.owner[c]!;
    const nx = this.next[c]!;
    const pv = this.prev[c]!;
    if (
      (fl !== this.zero8) !== touched || (ow !== this.zero8) !== touched ||
      (nx !== this.zero64) !== touched || (pv !== this.zero64) !== touched
    ) {
      fail(`chunk ${c}'s arrays disagree with its state`);
    }
    if (touched && dirty === 0) fail(`chunk ${c} has arrays but no block was written`);
    if (dirty === 0 && !exhaustive) {
      if (a !== lo || b !== hi || as !== lo || ae !== hi) {
        fail(`clean chunk ${c} holds ids that are no frames or frames never free`);
      }
      return;
    }
    for (let k = 0; k < 32; k++) {
      const blo = lo + k * BLOCK_PAGES;
      const bhi = blo + BLOCK_PAGES;
      const clean = ((dirty >>> k) & 1) === 0;
      if (clean && !(bhi <= a || blo >= b || (blo >= as && bhi <= ae))) {
        fail(`clean block ${k} of chunk ${c} holds ids that are no frames or frames never free`);
      }
      if (clean && !exhaustive) continue;
      for (let w = blo / 32; w < bhi / 32; w++) {
        const busy = this.busyMap[w]!;
        if (clean && busy !== 0) fail(`clean block ${k} of chunk ${c} has busy pages`);
        const part = (this.partMap[w >>> 5]! >>> (w & 31)) & 1;
        if (part !== (busy !== 0 ? 1 : 0)) fail(`summary bit of bitmap word ${w}`);
        if ((w & 31) === 31) {
          const q = w >>> 5;
          const sum = (this.partSum[q >>> 5]! >>> (q & 31)) & 1;
          if (sum !== (this.partMap[q] === -1 ? 1 : 0)) fail(`summary bit of word ${q}`);
        }
        if (!touched) continue;
        const wlo = w * 32;
        if (clean) {
          for (let i = wlo - lo; i < wlo - lo + 32; i++) {
            if (fl[i] || ow[i] || nx[i] || pv[i]) {
              fail(`clean block ${k} of chunk ${c} was written`);
            }
          }
          continue;
        }
        // Free frames carry no flags and no owner.
        const fa = Math.max(a, wlo);
        const fb = Math.min(b, wlo + 32);
        let free = fa < fb ? ~busy & bitsOf(fa, fb) : 0;
        while (free !== 0) {
          const i = wlo + ctz32(free) - lo;
          free &= free - 1;
          if (fl[i] !== 0 || ow[i] !== 0) {
            fail(`free page id ${lo + i} has flags ${fl[i]} or owner ${ow[i]}`);
          }
        }
        if (!exhaustive) continue;
        // Ids that are no frames are never written.
        for (let id = wlo; id < wlo + 32; id++) {
          if (id >= a && id < b) continue;
          const i = id - lo;
          if (((busy >>> (id & 31)) & 1) !== 0 || fl[i] || ow[i] || nx[i] || pv[i]) {
            fail(`id ${id}, no frame, was written`);
          }
        }
      }
    }
  }

  /** The first id of chunk `c` that is a frame (`chunkEndFrame(c)` when none is). */
  chunkFirstFrame(c: number): number {
    const l = this.chunkLoad[c]!;
    if (l < 0) return 0;
    return Math.max(c * CHUNK_PAGES, this.segStart[this.#loadSeg[l]!]! + this.#loadOffset[l]!);
  }

  /** One past the last id of chunk `c` that is a frame. */
  chunkEndFrame(c: number): number {
    const l = this.chunkLoad[c]!;
    if (l < 0) return 0;
    return Math.min((c + 1) * CHUNK_PAGES, this.segEnd[this.#loadSeg[l]!]! + this.#loadOffset[l]!);
  }

  // ---- internals ----------------------------------------------------------

  /** Marks the block of page id `id` written. */
  #dirty(id: number): void {
    this.chunkDirty[chunkOf(id)]! |= 1 << ((id & CHUNK_MASK) >>> BLOCK_SHIFT);
  }

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

  /**
   * First id of a segment starting at `start`: in a fresh chunk, past its
   * first 32 ids (so the ids of two segments are never adjacent), congruent
   * to `start` mod 32.
   */
  #baseFor(start: number): number {
    return this.nchunks * CHUNK_PAGES + 32 + (start % 32);
  }

  /** Grows the chunk tables to hold `chunks` chunks. */
  #growChunks(chunks: number): void {
    if (chunks <= this.chunkLoad.length) return;
    const n = Math.max(chunks, this.chunkLoad.length * 2);
    const load = new Int32Array(n).fill(-1);
    load.set(this.chunkLoad);
    this.chunkLoad = load;
    const state = new Uint8Array(n);
    state.set(this.chunkState);
    this.chunkState = state;
    const dirty = new Int32Array(n);
    dirty.set(this.chunkDirty);
    this.chunkDirty = dirty;
  }

  /**
   * Grows the bitmap to `words` words (at least doubling), copying only the
   * chunks whose words may be other than zero.
   */
  #growWords(words: number): void {
    const cap = this.busyMap.length;
    if (words <= cap) return;
    const chunks = Math.max(Math.ceil(words / CHUNK_WORDS), (2 * cap) / CHUNK_WORDS);
    const n = Math.min(chunks, MAX_IDS / CHUNK_PAGES) * CHUNK_WORDS;
    const busy = new Int32Array(n);
    const part = new Int32Array(n / 32);
    const sum = new Int32Array(n / 1024);
    for (let c = 0; c < this.nchunks; c++) {
      if (this.chunkDirty[c] === 0) continue;
      const w = c * CHUNK_WORDS;
      busy.set(this.busyMap.subarray(w, w + CHUNK_WORDS), w);
      part.set(this.partMap.subarray(w / 32, (w + CHUNK_WORDS) / 32), w / 32);
      sum.set(this.partSum.subarray(w / 1024, (w + CHUNK_WORDS) / 1024), w / 1024);
    }
    this.busyMap = busy;
    this.partMap = part;
    this.partSum = sum;
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
    this.#loadOffset = f(this.#loadOffset);
    this.#loadFreeList = i(this.#loadFreeList);
    this.#loadSeg = i(this.#loadSeg);
    this.#bySize = i(this.#bySize);
    this.searchOrder = i(this.searchOrder);
  }
}

/** `x mod 2^32` for an integer `x` (what a `u_int` keeps of it). */
export function u32(x: number): number {
  return x >>> 0;
}
