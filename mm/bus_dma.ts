/**
 * bus_dma: how the kernel hands devices memory they can actually reach.
 *
 * Theory. A *tag* describes what a device can do: the window of physical
 * addresses it reaches (`lowAddr` to `highAddr`, both inclusive), the
 * alignment of every segment start, a boundary no segment may cross, the
 * largest transfer, the number of segments it takes and the largest
 * segment. A child tag inherits its parent's restrictions and can only
 * tighten them (FreeBSD's bus_dma_tag_create, NetBSD's bus_dmatag_subregion).
 *
 * DMA-safe memory (`dmamemAlloc`) comes straight from uvm_pglistalloc with
 * the tag's window (its high clamped to the end of RAM), alignment,
 * boundary and segment count, and is mapped into kernel virtual space.
 *
 * A *map* carries one transfer. `load` walks a kernel buffer through the
 * pmap page by page; each piece is either used in place or, when the device
 * cannot reach it or it breaks the tag's alignment, copied through a bounce
 * page (FreeBSD's busdma_bounce: bounce exactly what must be bounced). The
 * pieces are merged into segments and split at the tag's boundary and
 * maximum segment size; when they do not fit in the map's segments the load
 * is refused with `EFBIG`, as NetBSD does. `sync` copies into the bounce
 * pages before the device reads (PREWRITE) and out of them after it writes
 * (POSTREAD). Bounce pages come from a pool allocated with uvm_pglistalloc
 * below the tag's high address; when it runs dry the load fails with
 * `ENOMEM` and the pool counts the exhaustion with its total and used pages,
 * as Linux reports a full swiotlb.
 *
 * Data structures: a map keeps its segments in a Float64Array
 * (address, length pairs) and its bounce records in a second one (buffer
 * address, bounce page, length), both sized at create time; a pool keeps
 * its free bounce pages on an Int32Array stack. Loading and syncing
 * allocate no JS objects.
 *
 * Cost: a load is O(pages of the buffer): the pmap hands over the
 * buffer's physical pages a batch at a time, and a page the device reaches
 * that starts a new segment whole is appended with a few comparisons; a
 * sync is O(bytes bounced).
 *
 * @module
 */

import { checkInteger, checkPowerOfTwo, KernelError, type KernelErrorCode } from "./errors.ts";
import type { PhysicalAccess } from "./pmap.ts";

/** What bus_dma needs of the kernel's virtual memory: translation and access. */
export interface KernelVirtual {
  /** pmap_extract: physical address of kernel virtual `va`, or -1. */
  extract(va: number): number;
  /**
   * pmap_extract over a range: the start address of each page of
   * `[va, va + len)` into `out`, in order, up to the first unmapped one;
   * returns how many were written.
   */
  extractPages(va: number, len: number, out: Float64Array): number;
  /** Copies bytes at kernel virtual `va` into `dst`. */
  read(va: number, dst: Uint8Array): void;
  /** Copies `src` to kernel virtual `va`. */
  write(va: number, src: Uint8Array): void;
}

/** A list of physical pages from the page allocator, as runs. */
export interface PageRuns {
  /** `[first frame, count]` runs in list order. */
  readonly runs: readonly (readonly [number, number])[];
}

/** What bus_dma needs of the physical page allocator and the kernel map. */
export interface DmaBackend {
  /** Page size in bytes. */
  readonly pageSize: number;
  /** One past the highest RAM address (where tags' high is clamped). */
  readonly ramEnd: number;
  /** Physical memory, for bounce copies. */
  readonly phys: PhysicalAccess;
  /** Kernel virtual memory, for walking and copying buffers. */
  readonly kva: KernelVirtual;
  /** uvm_pglistalloc with `high` exclusive; throws ENOMEM or EINVAL. */
  allocPages(
    size: number,
    low: number,
    high: number,
    alignment: number,
    boundary: number,
    nsegs: number,
  ): PageRuns;
  /** uvm_pglistfree. */
  freePages(list: PageRuns): void;
  /** Maps physical pages at fresh kernel virtual addresses; returns the address. */
  mapPages(list: PageRuns): number;
  /** Undoes {@link DmaBackend.mapPages}. */
  unmapPages(va: number, size: number): void;
}

/** The restrictions of a device (all addresses in bytes). */
export interface DmaTagParams {
  /** Lowest reachable physical address (default 0). */
  lowAddr?: number;
  /** Highest reachable physical address, inclusive (default: no limit). */
  highAddr?: number;
  /** Every segment must start at a multiple of this (a power of two, default 1). */
  alignment?: number;
  /** No segment may cross a multiple of this (a power of two, 0 = none). */
  boundary?: number;
  /** Largest transfer in bytes (default: no limit). */
  maxSize?: number;
  /** Most segments per transfer (default: no limit). */
  nSegments?: number;
  /** Largest segment in bytes (default: no limit). */
  maxSegSize?: number;
}

const NO_LIMIT = Number.MAX_SAFE_INTEGER;
/** Buffer pages a load asks the pmap for at once. */
const PAGE_BATCH = 64;

/** A device's DMA restrictions; children only tighten their parent's. */
export class DmaTag {
  /** Name in the boot log. */
  readonly name: string;
  /** Lowest reachable physical address. */
  readonly lowAddr: number;
  /** Highest reachable physical address (inclusive). */
  readonly highAddr: number;
  /** Segment start alignment. */
  readonly alignment: number;
  /** Boundary segments must not cross (0 = none). */
  readonly boundary: number;
  /** Largest transfer. */
  readonly maxSize: number;
  /** Most segments per transfer. */
  readonly nSegments: number;
  /** Largest segment. */
  readonly maxSegSize: number;
  /** The tag this one was derived from. */
  readonly parent: DmaTag | null;

  /** A tag with `params`, restricted further by `parent` when given. */
  constructor(name: string, params: DmaTagParams, parent: DmaTag | null = null) {
    const low = checkInteger("lowAddr", params.lowAddr ?? 0);
    const high = checkInteger("highAddr", params.highAddr ?? NO_LIMIT);
    if (high < low) {
      throw new KernelError("EINVAL", `highAddr ${high} is below lowAddr ${low}`);
    }
    const alignment = checkPowerOfTwo("alignment", params.alignment ?? 1);
    const boundary = params.boundary ?? 0;
    if (boundary !== 0) checkPowerOfTwo("boundary", boundary);
    const maxSize = checkInteger("maxSize", params.maxSize ?? NO_LIMIT, 1);
    const nSegments = checkInteger("nSegments", params.nSegments ?? NO_LIMIT, 1);
    const maxSegSize = checkInteger("maxSegSize", params.maxSegSize ?? NO_LIMIT, 1);
    this.name = name;
    this.parent = parent;
    this.lowAddr = parent === null ? low : Math.max(low, parent.lowAddr);
    this.highAddr = parent === null ? high : Math.min(high, parent.highAddr);
    if (this.highAddr < this.lowAddr) {
      throw new KernelError(
        "EINVAL",
        `tag ${name}: no address is left between its parent's window and its own`,
      );
    }
    this.alignment = parent === null ? alignment : Math.max(alignment, parent.alignment);
    this.boundary = parent === null || parent.boundary === 0
      ? boundary
      : boundary === 0
      ? parent.boundary
      : Math.min(boundary, parent.boundary);
    this.maxSize = parent === null ? maxSize : Math.min(maxSize, parent.maxSize);
    this.nSegments = parent === null ? nSegments : Math.min(nSegments, parent.nSegments);
    let seg = parent === null ? maxSegSize : Math.min(maxSegSize, parent.maxSegSize);
    if (this.boundary !== 0) seg = Math.min(seg, this.boundary);
    this.maxSegSize = seg;
  }

  /** True when the device can use `[pa, pa + len)` as one segment start as it is. */
  reaches(pa: number, len: number): boolean {
    return pa >= this.lowAddr && pa + len - 1 <= this.highAddr && pa % this.alignment === 0;
  }

  /** A one-line description for the boot log. */
  describe(): string {
    const hex = (n: number) => "0x" + n.toString(16);
    const lim = (n: number, f: (n: number) => string) => n === NO_LIMIT ? "-" : f(n);
    return `window [${hex(this.lowAddr)}, ${lim(this.highAddr, hex)}] align ${this.alignment} ` +
      `boundary ${this.boundary === 0 ? "-" : hex(this.boundary)} maxsize ${
        lim(this.maxSize, String)
      } ` +
      `nsegs ${lim(this.nSegments, String)} maxsegsz ${lim(this.maxSegSize, String)}`;
  }
}

/** `bus_dmamap_sync` operations. */
export const BUS_DMASYNC_PREREAD = 1;
/** Before the device reads memory: copy into bounce pages. */
export const BUS_DMASYNC_PREWRITE = 2;
/** After the device wrote memory: copy out of bounce pages. */
export const BUS_DMASYNC_POSTREAD = 4;
/** After the device read memory. */
export const BUS_DMASYNC_POSTWRITE = 8;

/** Counters of a bounce pool. */
export interface BouncePoolStats {
  /** Pages in the pool. */
  total: number;
  /** Pages in use now. */
  used: number;
  /** Loads refused because the pool was empty. */
  exhausted: number;
}

/** Bounce pages below one high address (a FreeBSD bounce zone, a Linux swiotlb). */
export class BouncePool {
  /** Highest address of the pool's pages (inclusive). */
  readonly highAddr: number;
  /** Pages in the pool. */
  readonly total: number;
  readonly #pages: Float64Array;
  readonly #free: Int32Array;
  #nfree: number;
  #exhausted = 0;
  readonly #list: PageRuns;

  /** Wraps `list` (pages of `pageSize`) as a pool. */
  constructor(list: PageRuns, pageSize: number, highAddr: number) {
    this.#list = list;
    this.highAddr = highAddr;
    let n = 0;
    for (const [, c] of list.runs) n += c;
    this.total = n;
    this.#pages = new Float64Array(n);
    this.#free = new Int32Array(n);
    let i = 0;
    for (const [pfn, c] of list.runs) {
      for (let k = 0; k < c; k++) this.#pages[i++] = (pfn + k) * pageSize;
    }
    for (let k = 0; k < n; k++) this.#free[k] = n - 1 - k;
    this.#nfree = n;
  }

  /** The page list behind the pool (to give back at shutdown). */
  get list(): PageRuns {
    return this.#list;
  }

  /** The pool's counters. */
  get stats(): BouncePoolStats {
    return { total: this.total, used: this.total - this.#nfree, exhausted: this.#exhausted };
  }

  /** Free pages now. */
  get free(): number {
    return this.#nfree;
  }

  /** Takes a page; returns its index in the pool, or -1 when none is left. */
  take(): number {
    return this.#nfree === 0 ? -1 : this.#free[--this.#nfree]!;
  }

  /** Physical address of the pool's page `index`. */
  addr(index: number): number {
    return this.#pages[index]!;
  }

  /** Gives back the page `index` taken with {@link BouncePool.take}. */
  give(index: number): void {
    this.#free[this.#nfree++] = index;
  }

  /** Records a load refused for lack of pages. */
  noteExhausted(): void {
    this.#exhausted++;
  }
}

/** Counters of a bus_dma instance. */
export interface BusDmaStats {
  /** Successful loads. */
  loads: number;
  /** Segments handed to devices. */
  segments: number;
  /** Bytes copied through bounce pages by syncs. */
  bouncedBytes: number;
  /** Loads refused with EFBIG (segments did not fit). */
  efbig: number;
  /** Loads refused because a bounce pool was empty. */
  bounceExhausted: number;
}

/** DMA-safe memory: physical pages the tag allows, mapped in kernel space. */
export interface DmaMemory {
  /** The tag it was allocated for. */
  readonly tag: DmaTag;
  /** Bytes (a page multiple). */
  readonly size: number;
  /** Kernel virtual address of the mapping. */
  readonly kva: number;
  /** Physical segments as `[address, length]`. */
  readonly segs: readonly (readonly [number, number])[];
  /** The page list behind it. */
  readonly pages: PageRuns;
}

/** One transfer's mapping: segments for the device, bounce records for sync. */
export class DmaMap {
  /** The tag it obeys. */
  readonly tag: DmaTag;
  /** Largest buffer it loads. */
  readonly maxSize: number;
  /** Segments it holds at most. */
  readonly maxSegs: number;
  /** Segment addresses and lengths, interleaved; valid up to `nsegs`. */
  readonly segs: Float64Array;
  /** Segments of the current load. */
  nsegs = 0;
  /** Bytes of the current load (0 when unloaded). */
  mapsize = 0;
  /** Bounce records: buffer va, pool page index, length; valid up to `nbounce`. */
  readonly bounce: Float64Array;
  /** Bounce records of the current load. */
  nbounce = 0;
  /** The pool the bounce pages came from. */
  readonly pool: BouncePool | null;
  /**
   * The map's own contiguous bounce buffer (NetBSD's whole-buffer bounce),
   * used when a buffer's pages cannot be described in the map's segments.
   */
  bounceBuffer: DmaMemory | null = null;
  /** Kernel address of the buffer bounced whole by the current load (0: none). */
  wholeVa = 0;
  /** True once destroyed. */
  destroyed = false;

  /** Use {@link BusDma.createMap}. */
  constructor(
    tag: DmaTag,
    maxSize: number,
    maxSegs: number,
    pool: BouncePool | null,
    pageSize: number,
  ) {
    this.tag = tag;
    this.maxSize = maxSize;
    this.maxSegs = maxSegs;
    this.segs = new Float64Array(2 * maxSegs);
    this.pool = pool;
    this.bounce = new Float64Array(3 * (Math.ceil(maxSize / pageSize) + 1));
  }

  /** Address of segment `i`. */
  segAddr(i: number): number {
    return this.segs[2 * i]!;
  }

  /** Length of segment `i`. */
  segLen(i: number): number {
    return this.segs[2 * i + 1]!;
  }

  /** Bytes of the current load that go through bounce pages. */
  get bouncedBytes(): number {
    if (this.wholeVa !== 0) return this.mapsize;
    let n = 0;
    for (let i = 0; i < this.nbounce; i++) n += this.bounce[3 * i + 2]!;
    return n;
  }
}

/** The kernel's bus_dma: tags, DMA memory, maps and bounce pools. */
export class BusDma {
  readonly #be: DmaBackend;
  readonly #pools = new Map<number, BouncePool>();
  readonly #stats: BusDmaStats = {
    loads: 0,
    segments: 0,
    bouncedBytes: 0,
    efbig: 0,
    bounceExhausted: 0,
  };
  readonly #scratch: Uint8Array;
  readonly #pages = new Float64Array(PAGE_BATCH);
  readonly #live = new Set<DmaMemory>();

  /** bus_dma over `backend`. */
  constructor(backend: DmaBackend) {
    this.#be = backend;
    this.#scratch = new Uint8Array(backend.pageSize);
  }

  /** Counters of all loads and syncs. */
  get stats(): BusDmaStats {
    return { ...this.#stats };
  }

  /** The bounce pools, by their high address. */
  get pools(): ReadonlyMap<number, BouncePool> {
    return this.#pools;
  }

  /** DMA memory still allocated. */
  get liveMemory(): number {
    return this.#live.size;
  }

  /** True when some RAM lies outside the tag's window, so loads may need bounce pages. */
  mightBounce(tag: DmaTag): boolean {
    return tag.lowAddr > 0 || tag.highAddr < this.#be.ramEnd - 1 || tag.alignment > 1;
  }

  /**
   * Creates the bounce pool for `tag` (or grows nothing if one exists for
   * its high address) with `pages` pages taken below the tag's high address.
   */
  reserveBounce(tag: DmaTag, pages: number): BouncePool {
    checkInteger("pages", pages, 1);
    const existing = this.#pools.get(tag.highAddr);
    if (existing !== undefined) return existing;
    const ps = this.#be.pageSize;
    const high = this.#clampHigh(tag);
    const list = this.#be.allocPages(pages * ps, roundUp(tag.lowAddr, ps), high, ps, 0, pages);
    const pool = new BouncePool(list, ps, tag.highAddr);
    this.#pools.set(tag.highAddr, pool);
    return pool;
  }

  /**
   * bus_dmamem_alloc + bus_dmamem_map: `size` bytes the device can reach,
   * in at most `nsegs` physical segments (default: the tag's), aligned and
   * bounded as the tag says (or stricter), mapped in kernel space.
   */
  dmamemAlloc(
    tag: DmaTag,
    size: number,
    opts: { alignment?: number; boundary?: number; nsegs?: number } = {},
  ): DmaMemory {
    checkInteger("size", size, 1);
    if (size > tag.maxSize) {
      throw new KernelError(
        "EINVAL",
        `size ${size} exceeds tag ${tag.name}'s maxsize ${tag.maxSize}`,
      );
    }
    const ps = this.#be.pageSize;
    const alignment = Math.max(
      checkPowerOfTwo("alignment", opts.alignment ?? tag.alignment),
      tag.alignment,
    );
    let boundary = opts.boundary ?? tag.boundary;
    if (boundary !== 0) checkPowerOfTwo("boundary", boundary);
    if (tag.boundary !== 0) {
      boundary = boundary === 0 ? tag.boundary : Math.min(boundary, tag.boundary);
    }
    const nsegs = checkInteger("nsegs", opts.nsegs ?? Math.min(tag.nSegments, 1 << 30), 1);
    const rounded = roundUp(size, ps);
    const pages = this.#be.allocPages(
      rounded,
      roundUp(tag.lowAddr, ps),
      this.#clampHigh(tag),
      alignment,
      boundary,
      nsegs,
    );
    const segs: [number, number][] = [];
    for (const [pfn, count] of pages.runs) {
      const pa = pfn * ps;
      const last = segs[segs.length - 1];
      if (last !== undefined && last[0] + last[1] === pa) last[1] += count * ps;
      else segs.push([pa, count * ps]);
    }
    if (segs.length > nsegs) {
      // The page allocator may hand back more runs than asked on its simple path.
      this.#be.freePages(pages);
      throw new KernelError("ENOMEM", `no ${size} bytes in ${nsegs} segments for tag ${tag.name}`);
    }
    const kva = this.#be.mapPages(pages);
    const mem: DmaMemory = { tag, size: rounded, kva, segs, pages };
    this.#live.add(mem);
    return mem;
  }

  /** bus_dmamem_unmap + bus_dmamem_free. */
  dmamemFree(mem: DmaMemory): void {
    if (!this.#live.delete(mem)) {
      throw new KernelError(
        "BADFREE",
        `DMA memory at kva 0x${mem.kva.toString(16)} is not allocated`,
      );
    }
    this.#be.unmapPages(mem.kva, mem.size);
    this.#be.freePages(mem.pages);
  }

  /**
   * bus_dmamap_create: a map for transfers of up to `size` bytes in up to
   * `nsegs` segments (both at most the tag's). It uses the tag's bounce pool
   * when one has been reserved for it. With `bounceBuffer`, the map also gets
   * a contiguous bounce buffer of `size` bytes within the tag (as NetBSD's
   * isa_dmamap_create does for ISA DMA): a buffer whose pages do not fit the
   * map's segments is then copied through it whole.
   */
  createMap(
    tag: DmaTag,
    size: number = tag.maxSize,
    nsegs: number = tag.nSegments,
    opts: { bounceBuffer?: boolean } = {},
  ): DmaMap {
    checkInteger("size", size, 1, tag.maxSize);
    checkInteger("nsegs", nsegs, 1, Math.min(tag.nSegments, 1 << 20));
    if (size === NO_LIMIT) throw new KernelError("EINVAL", `a map needs a finite size`);
    const map = new DmaMap(
      tag,
      size,
      nsegs,
      this.#pools.get(tag.highAddr) ?? null,
      this.#be.pageSize,
    );
    if (opts.bounceBuffer) map.bounceBuffer = this.dmamemAlloc(tag, size, { nsegs });
    return map;
  }

  /** bus_dmamap_destroy. The map must be unloaded; its bounce buffer is freed. */
  destroyMap(map: DmaMap): void {
    if (map.mapsize !== 0) {
      throw new KernelError("EBUSY", `map is still loaded (${map.mapsize} bytes)`);
    }
    if (map.destroyed) throw new KernelError("EINVAL", "map is already destroyed");
    if (map.bounceBuffer !== null) this.dmamemFree(map.bounceBuffer);
    map.bounceBuffer = null;
    map.destroyed = true;
  }

  /**
   * bus_dmamap_load of the kernel buffer `[va, va + len)`: the pages the
   * device reaches are used in place, the others bounce page by page. When
   * that does not fit the map's segments (or the pool is empty) and the map
   * has a bounce buffer, the whole buffer goes through it. Refused with
   * EFBIG when the segments do not fit, ENOMEM when bounce pages run out,
   * EFAULT for an unmapped buffer page; a refused load leaves the map
   * unloaded.
   */
  load(map: DmaMap, va: number, len: number): void {
    this.#startLoad(map, len);
    let code = this.#loadPages(map, va, len);
    if (code !== null && code !== "EFAULT" && map.bounceBuffer !== null) {
      code = this.#loadMemorySegs(map, map.bounceBuffer, len);
      if (code === null) map.wholeVa = va;
    }
    if (code === null) {
      map.mapsize = len;
      this.#stats.loads++;
      this.#stats.segments += map.nsegs;
      return;
    }
    const pool = map.pool;
    const s = pool?.stats;
    this.#abortLoad(map);
    const t = map.tag;
    switch (code) {
      case "EFAULT":
        throw new KernelError(
          "EFAULT",
          `buffer [0x${va.toString(16)}, +${len}) has an unmapped page`,
        );
      case "ENOMEM":
        pool!.noteExhausted();
        this.#stats.bounceExhausted++;
        throw new KernelError(
          "ENOMEM",
          `bounce pool below 0x${pool!.highAddr.toString(16)} is full (${len} bytes), ` +
            `total ${s!.total} (pages), used ${s!.used} (pages)`,
        );
      case "EINVAL":
        throw new KernelError(
          "EINVAL",
          `tag ${t.name} cannot reach the buffer and has no bounce pool`,
        );
      default:
        this.#stats.efbig++;
        throw new KernelError(
          "EFBIG",
          `${len} bytes do not fit in ${map.maxSegs} segments of tag ${t.name} ` +
            `(maxsegsz ${t.maxSegSize}, boundary ${t.boundary})`,
        );
    }
  }

  /**
   * The page-by-page load; returns null or the code of the refusal. The
   * pmap hands over the buffer's physical pages a batch at a time; pages
   * are then taken in order exactly as one pmap_extract each would be, so
   * a refusal names the first page that causes one.
   */
  #loadPages(map: DmaMap, va: number, len: number): KernelErrorCode | null {
    const ps = this.#be.pageSize;
    const kva = this.#be.kva;
    const pages = this.#pages;
    const tag = map.tag;
    // The tag's window and alignment, read once (DmaTag.reaches, inlined).
    // Remainders by these powers of two go through floor, not `%`: on
    // addresses past 2^31 `%` is a floating-point remainder, a slow call.
    const low = tag.lowAddr, high = tag.highAddr, align = tag.alignment;
    const boundary = tag.boundary, maxSegSize = tag.maxSegSize, maxSegs = map.maxSegs;
    const segs = map.segs;
    if (!Number.isInteger(va)) return "EFAULT"; // no page maps it
    // Where `va` falls in its page: the first piece starts there, every
    // later one at a page start.
    let inPage = va - Math.floor(va / ps) * ps;
    // Products with the exact reciprocals of these powers of two stand for
    // divisions, which cost several times more.
    const perAlign = 1 / align, perBoundary = boundary === 0 ? 0 : 1 / boundary;
    // A piece never crosses a page, so some tests cannot fail and are
    // skipped: with an alignment of at most a page, a piece starting a page
    // is aligned; with a boundary of at least a page (or none) and a longest
    // segment of at least a page, every piece fits one segment as it is.
    const alignPages = align <= ps;
    const piecesFit = maxSegSize >= ps && (boundary === 0 || boundary >= ps);
    let off = 0;
    while (off < len) {
      const batch = Math.min(len - off, PAGE_BATCH * ps - inPage);
      const want = Math.ceil((inPage + batch) / ps);
      const got = kva.extractPages(va + off, batch, pages);
      for (let i = 0; i < got; i++) {
        const room = ps - inPage, rest = len - off;
        const n = rest < room ? rest : room;
        const pa = pages[i]! + inPage;
        if (
          pa >= low && pa + n - 1 <= high &&
          ((inPage === 0 && alignPages) || align === 1 ||
            Math.floor(pa * perAlign) * align === pa)
        ) {
          // A piece that cannot continue the last segment and fits one
          // segment as it is (not too long, inside one boundary window) is
          // appended here; _bus_dmamap_addseg would do the same.
          const k = map.nsegs;
          if (
            (k === 0 || segs[2 * k - 2]! + segs[2 * k - 1]! !== pa) &&
            (piecesFit || (n <= maxSegSize &&
              (boundary === 0 || pa - Math.floor(pa * perBoundary) * boundary + n <= boundary)))
          ) {
            if (k === maxSegs) return "EFBIG";
            segs[2 * k] = pa;
            segs[2 * k + 1] = n;
            map.nsegs = k + 1;
          } else if (!this.#addSeg(map, pa, n)) return "EFBIG";
        } else {
          // A bounce page stands in for one buffer page (or the part of it the
          // buffer covers), from the bounce page's start, as busdma_bounce does.
          const pool = map.pool;
          if (pool === null) return "EINVAL";
          const bi = pool.take();
          if (bi < 0) return "ENOMEM";
          const b = 3 * map.nbounce++;
          map.bounce[b] = va + off;
          map.bounce[b + 1] = bi;
          map.bounce[b + 2] = n;
          if (!this.#addSeg(map, pool.addr(bi), n)) return "EFBIG";
        }
        off += n;
        inPage = 0;
      }
      if (got < want) return "EFAULT";
    }
    return null;
  }

  /** Puts the first `len` bytes of `mem` in the map's segments; null or a code. */
  #loadMemorySegs(map: DmaMap, mem: DmaMemory, len: number): KernelErrorCode | null {
    for (let i = 0; i < map.nbounce; i++) map.pool!.give(map.bounce[3 * i + 1]!);
    map.nbounce = 0;
    map.nsegs = 0;
    let left = len;
    for (const [pa, n] of mem.segs) {
      const take = Math.min(n, left);
      if (!map.tag.reaches(pa, take)) return "EINVAL";
      if (!this.#addSeg(map, pa, take)) return "EFBIG";
      left -= take;
      if (left === 0) break;
    }
    return null;
  }

  /**
   * bus_dmamap_load_raw of DMA memory: the whole of `mem` (or its first
   * `len` bytes), which the tag reaches by construction.
   */
  loadMemory(map: DmaMap, mem: DmaMemory, len: number = mem.size): void {
    checkInteger("len", len, 1, mem.size);
    this.#startLoad(map, len);
    const code = this.#loadMemorySegs(map, mem, len);
    if (code === null) {
      map.mapsize = len;
      this.#stats.loads++;
      this.#stats.segments += map.nsegs;
      return;
    }
    this.#abortLoad(map);
    if (code === "EFBIG") this.#stats.efbig++;
    throw new KernelError(
      code,
      code === "EFBIG"
        ? `${len} bytes of DMA memory do not fit in ${map.maxSegs} segments of tag ${map.tag.name}`
        : `DMA memory at kva 0x${mem.kva.toString(16)} is outside tag ${map.tag.name}`,
    );
  }

  /** bus_dmamap_sync: copies through the map's bounce pages as `ops` asks. */
  sync(map: DmaMap, ops: number): void {
    if (map.mapsize === 0) throw new KernelError("EINVAL", "sync of an unloaded map");
    checkInteger("ops", ops, 1, 15);
    const scratch = this.#scratch;
    if (map.wholeVa !== 0) {
      const kva = map.bounceBuffer!.kva;
      for (let off = 0; off < map.mapsize; off += scratch.length) {
        const buf = scratch.subarray(0, Math.min(scratch.length, map.mapsize - off));
        if (ops & BUS_DMASYNC_PREWRITE) {
          this.#be.kva.read(map.wholeVa + off, buf);
          this.#be.kva.write(kva + off, buf);
        }
        if (ops & BUS_DMASYNC_POSTREAD) {
          this.#be.kva.read(kva + off, buf);
          this.#be.kva.write(map.wholeVa + off, buf);
        }
      }
      if (ops & BUS_DMASYNC_PREWRITE) this.#stats.bouncedBytes += map.mapsize;
      if (ops & BUS_DMASYNC_POSTREAD) this.#stats.bouncedBytes += map.mapsize;
      return;
    }
    for (let i = 0; i < map.nbounce; i++) {
      const va = map.bounce[3 * i]!;
      const bpa = map.pool!.addr(map.bounce[3 * i + 1]!);
      const n = map.bounce[3 * i + 2]!;
      const buf = scratch.subarray(0, n);
      if (ops & BUS_DMASYNC_PREWRITE) {
        this.#be.kva.read(va, buf);
        this.#be.phys.write(bpa, buf);
        this.#stats.bouncedBytes += n;
      }
      if (ops & BUS_DMASYNC_POSTREAD) {
        this.#be.phys.read(bpa, buf);
        this.#be.kva.write(va, buf);
        this.#stats.bouncedBytes += n;
      }
    }
  }

  /** bus_dmamap_unload: forgets the segments and returns the bounce pages. */
  unload(map: DmaMap): void {
    if (map.mapsize === 0) throw new KernelError("EINVAL", "unload of an unloaded map");
    this.#abortLoad(map);
  }

  /** Gives every bounce pool's pages back (at shutdown); maps must be unloaded. */
  releasePools(): void {
    for (const pool of this.#pools.values()) {
      if (pool.stats.used !== 0) {
        throw new KernelError("EBUSY", `bounce pool still has ${pool.stats.used} pages in use`);
      }
      this.#be.freePages(pool.list);
    }
    this.#pools.clear();
  }

  #clampHigh(tag: DmaTag): number {
    return Math.min(tag.highAddr + 1, this.#be.ramEnd);
  }

  #startLoad(map: DmaMap, len: number): void {
    if (map.destroyed) throw new KernelError("EINVAL", "load of a destroyed map");
    if (map.mapsize !== 0) {
      throw new KernelError("EBUSY", `map is already loaded (${map.mapsize} bytes)`);
    }
    checkInteger("len", len, 1);
    if (len > map.maxSize) {
      this.#stats.efbig++;
      throw new KernelError("EFBIG", `buffer of ${len} bytes exceeds the map's ${map.maxSize}`);
    }
    map.nsegs = 0;
    map.nbounce = 0;
  }

  #abortLoad(map: DmaMap): void {
    for (let i = 0; i < map.nbounce; i++) map.pool!.give(map.bounce[3 * i + 1]!);
    map.nbounce = 0;
    map.nsegs = 0;
    map.mapsize = 0;
    map.wholeVa = 0;
  }

  /**
   * Appends `[pa, pa + n)` to the map's segments, merging with the last one
   * when contiguous and splitting at the boundary and the maximum segment
   * size (_bus_dmamap_addseg). Returns false when the segments run out.
   */
  #addSeg(map: DmaMap, pa: number, n: number): boolean {
    const tag = map.tag, segs = map.segs;
    const boundary = tag.boundary, maxSegSize = tag.maxSegSize;
    while (n > 0) {
      let take = n;
      // Start of the boundary window `pa` is in; `take` stays inside it.
      let window = 0;
      if (boundary !== 0) {
        window = Math.floor(pa / boundary) * boundary;
        take = Math.min(take, window + boundary - pa);
      }
      const last = map.nsegs - 1;
      // Merge with the last segment when it ends at `pa`, stays short enough
      // and lies in the same boundary window.
      if (
        last >= 0 && segs[2 * last]! + segs[2 * last + 1]! === pa &&
        segs[2 * last + 1]! + take <= maxSegSize &&
        (boundary === 0 || segs[2 * last]! >= window)
      ) {
        segs[2 * last + 1]! += take;
      } else {
        take = Math.min(take, maxSegSize);
        if (map.nsegs === map.maxSegs) return false;
        segs[2 * map.nsegs] = pa;
        segs[2 * map.nsegs + 1] = take;
        map.nsegs++;
      }
      pa += take;
      n -= take;
    }
    return true;
  }
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
