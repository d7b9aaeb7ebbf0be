/**
 * bus_dma: how the kernel hands devices memory they can actually reach.
 *
 * Theory. A *tag* describes what a device can do, in the machine's own
 * vocabulary ({@link DmaConstraints}: the window of addresses it reaches,
 * segment alignment, a boundary no segment crosses, segment count and size,
 * the longest transfer). A tag is made from its device's constraints in one
 * call ({@link BusDma.tagForDevice}) and may narrow them; a tag derived
 * from a parent (a device, or another tag) that asks for more than the
 * parent allows is refused when it is made, naming the field and both
 * values (FreeBSD's bus_dma_tag_create, NetBSD's bus_dmatag_subregion,
 * without their silent clamping). Limits that contradict each other (a
 * longest segment that is not a multiple of the alignment) are refused too:
 * every segment bus_dma hands out satisfies its tag.
 *
 * DMA-safe memory (`dmamemAlloc`) comes straight from uvm_pglistalloc with
 * the tag's window (clamped to RAM), alignment, boundary and segment count,
 * and is mapped into kernel virtual space.
 *
 * Bounce pages are a system service, as Linux's swiotlb and FreeBSD's
 * bounce zones are. One pool of `bouncePages` pages is taken when the first
 * tag reserves from it (at boot, as drivers attach), in one contiguous run
 * placed as low as RAM allows (below 16 MiB when it fits, so that every
 * device reaches it), and managed as a vmem arena. A
 * tag that may need bounce pages (its window leaves out some RAM, or its
 * alignment is above 1) takes a reservation from the pool when it is made:
 * by default room for one load of its longest transfer, or the
 * `bouncePages` it asks for; the reservation lies inside the tag's window
 * and honours its alignment and boundary, and a tag whose reservation does
 * not fit the pool is refused. A tag's loads take bounce space only from
 * its own reservation (a vmem arena of its own), so one device never
 * starves another.
 *
 * A *map* carries one transfer. A load walks its source piece by piece (a
 * piece never crosses a page): a kernel buffer through the pmap
 * (`load`), a scatter list of kernel buffers (`loadSg`, as
 * `bus_dmamap_load_uio` / `dma_map_sg`), raw physical ranges (`loadPhys`),
 * a page list from uvm_pglistalloc (`loadPages`) or DMA memory
 * (`loadMemory`). The rules, which alone decide a load's segments:
 *
 * 1. A piece inside the tag's window is used in place when it starts
 *    aligned, or when it continues the previous in-place segment in RAM and
 *    that segment takes it (up to the next boundary) within the longest
 *    segment size; pieces used in place merge while they are contiguous,
 *    split at the boundary and at the longest segment size
 *    (_bus_dmamap_addseg), so every segment starts aligned.
 * 2. Every other piece bounces. Consecutive bounced pieces form a run that
 *    is copied into one contiguous stretch of the tag's reservation, aligned
 *    (and kept inside one boundary window when the run fits one), so a run
 *    of n bytes becomes the same segments wherever its bounce space lies. A
 *    bounced run never merges with its neighbours.
 * 3. When the segments do not fit the map, the load is refused with EFBIG;
 *    a map made with `bounceBuffer` then bounces the whole source as one
 *    run instead (NetBSD's isa_dmamap_create does this with a buffer of the
 *    map's own), which fits in one segment per boundary window.
 * 4. When the reservation has no room for a run now, a load fails at once
 *    with ENOMEM (`load*`, `loadAsync` with BUS_DMA_NOWAIT) or waits until
 *    a map of the same tag gives bounce space back (`loadAsync` with
 *    BUS_DMA_WAITOK, cancellable by its signal). A run the reservation could
 *    never hold fails at once either way.
 *
 * So EFBIG follows from the source's own layout and the tag; only whether
 * a load must wait depends on what else holds the tag's reservation.
 * `sync` copies between the source and its bounce space (PREWRITE before the
 * device reads, POSTREAD after it wrote), for all or part of the map.
 *
 * Behind an IOMMU. A tag of a device the IOMMU translates (made from the
 * device's limits, or from such a tag) hands out I/O virtual addresses of
 * the device's domain (`iommu.ts`) instead, and rules 1 and 2 give way to
 * these:
 *
 * 1'. The source's pieces are laid out in I/O virtual space in order, each
 *    at its own offset in its page: a piece that continues the previous one
 *    in RAM, or that starts a page right after one that ended a page,
 *    follows it when the last segment takes it (up to the next boundary,
 *    within the longest segment size, as rule 1); any other starts a new
 *    stretch on the next page (on the next multiple of the alignment when
 *    that is above a page), which must start aligned. Segments are cut from
 *    the stretches at the boundary and the longest segment size, so pages
 *    scattered in RAM become one segment.
 * 2'. The whole layout takes one allocation from the domain's arena: within
 *    the tag's window, aligned to the page and the tag's alignment, and not
 *    crossing a boundary when it fits in one (aligned to the boundary when it
 *    does not), so its segments are the same wherever it lands; the common
 *    sizes come from the arena's quantum caches. Its pages are mapped
 *    read-write; unload unmaps them, invalidates them in the IOTLB and frees
 *    the space. Nothing bounces for want of reach.
 *
 * When a translated layout does not fit the map (or a stretch cannot start
 * aligned, which no address can fix: the offset in the page is the
 * buffer's), a map with `bounceBuffer` bounces the source whole (rule 3)
 * and maps the bounce space instead; without it the load is refused (EFBIG,
 * EINVAL). A domain with no room is ENOMEM at once. A tag with no parent
 * describes physical memory even for a device behind the IOMMU: its
 * addresses are what a driver that bypasses the DMA API would program.
 *
 * Data structures: a map keeps its segments in a Float64Array (address,
 * length pairs), its bounce pieces in another (buffer offset, source
 * address, bounce address, length) and its bounce runs in a third (address,
 * size); a translated map also keeps the RAM pieces it mapped (address,
 * length) and the frame behind each I/O virtual page of its load (-1 for a
 * page between stretches). All are sized at create time and grown only for
 * a scatter list of more pieces than its size suggests. Loading and syncing
 * allocate no JS objects on the kernel-buffer path.
 *
 * Cost: a load is O(pages of the source): the pmap hands over a kernel
 * buffer's physical pages a batch at a time, and a page the device reaches
 * that continues a segment or starts one whole costs a few comparisons; a
 * physical range that starts a page goes in whole when the tag cuts only at
 * page multiples; a bounced run costs one vmem xalloc; a sync is O(bytes
 * bounced). A translated load costs O(pages) to lay out, one arena
 * allocation and the page-table stores; its unload the stores, an
 * invalidation and a free. With DMA-API debugging on, loads, syncs and
 * unloads are also reported to its hooks ({@link DmaDebugHooks}).
 *
 * @module
 */

import {
  checkInteger,
  checkPowerOfTwo,
  describe,
  KernelError,
  type KernelErrorCode,
} from "./errors.ts";
import type { PhysicalAccess } from "./pmap.ts";
import { VM_NOSLEEP, Vmem, VMEM_ALLOC } from "./vmem.ts";
import type { IommuDomain } from "./iommu.ts";
import {
  DMA_CONSTRAINT_FIELDS,
  DMA_NO_LIMIT,
  type DmaConstraints,
  type DmaLimits,
  dmaLimits,
  IOPTE_READ,
  IOPTE_WRITE,
  MachineError,
  segmentProblem,
} from "../machine/mod.ts";

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
  /** One past the highest RAM address (where windows are clamped). */
  readonly ramEnd: number;
  /** Physical memory. */
  readonly phys: PhysicalAccess;
  /** Kernel virtual memory, for walking buffers. */
  readonly kva: KernelVirtual;
  /** Copies `len` bytes of physical memory from `src` to `dst` (bounce copies). */
  copy(dst: number, src: number, len: number): void;
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

/** What bus_dma tells a DMA-API debugging tracker (see `dma_debug.ts`). */
export interface DmaDebugHooks {
  /** `map` was loaded. */
  loaded(map: DmaMap): void;
  /** `map` was synced with `ops`. */
  synced(map: DmaMap, ops: number): void;
  /** `map` is being unloaded. */
  unloaded(map: DmaMap): void;
  /** A refused call that is a misuse of `map`. */
  misuse(
    kind: "double-unload" | "load-loaded" | "sync-unloaded",
    map: DmaMap,
    addr: number,
    message: string,
  ): void;
  /** Shutdown found these maps and this DMA memory still there. */
  shutdown(maps: readonly DmaMap[], memory: readonly DmaMemory[]): void;
}

/** Where bus_dma finds the I/O virtual address space of a device behind an IOMMU. */
export interface DmaIommu {
  /** The domain of the device named `device`, or null when the IOMMU does not translate it. */
  domainOf(device: string): IommuDomain | null;
}

/** How a tag is made, beside its constraints. */
export interface DmaTagOptions {
  /**
   * The limits it narrows: a device's (a port's `limits`, a device table
   * row's `dma`) or another tag. Fields left out of the constraints are the
   * parent's; a field that asks for more than the parent's is refused. A
   * tag narrowing the limits of a device behind the IOMMU (named by
   * `device`), or a tag that does, hands out I/O virtual addresses of the
   * device's domain; a tag without a parent hands out physical addresses.
   */
  parent?: DmaTag | DmaLimits;
  /** The device whose transfers it describes (debug messages); default the parent tag's, or the name. */
  device?: string;
  /**
   * Bounce pages to reserve for its loads (default: when the tag may need
   * bouncing, one load of its longest transfer, at most
   * {@link BOUNCE_RESERVE_MAX} pages; else none). A map with `bounceBuffer`
   * needs a reservation even where every page is in reach. 0: loads that
   * need bounce pages are refused.
   */
  bouncePages?: number;
}

/** Most bounce pages a tag reserves by default. */
export const BOUNCE_RESERVE_MAX = 64;
/** Bounce pool pages the kernel allocates at boot unless told otherwise (256 KiB). */
export const DEFAULT_BOUNCE_PAGES = 64;

/** `loadAsync` flag: wait for bounce space. */
export const BUS_DMA_WAITOK = 0;
/** `loadAsync` flag: fail at once with ENOMEM when bounce space is short. */
export const BUS_DMA_NOWAIT = 1;

/** Buffer pages a load asks the pmap for at once. */
const PAGE_BATCH = 64;
const MiB16 = 2 ** 24;
const GiB4 = 2 ** 32;

/** A device's DMA restrictions, in the machine's vocabulary; made by {@link BusDma.createTag}. */
export class DmaTag implements DmaLimits {
  /** Name in the boot log. */
  readonly name: string;
  /** The device whose transfers it describes. */
  readonly device: string;
  /** Lowest reachable address. */
  readonly minAddress: number;
  /** Highest reachable address (inclusive). */
  readonly maxAddress: number;
  /** Segment start alignment. */
  readonly alignment: number;
  /** Boundary segments must not cross (0 = none). */
  readonly boundary: number;
  /** Most segments per transfer. */
  readonly maxSegments: number;
  /** Longest segment. */
  readonly maxSegmentSize: number;
  /** Longest transfer. */
  readonly maxTransfer: number;
  /** The tag this one narrows, or null. */
  readonly parent: DmaTag | null;
  /** Bounce pages reserved for its loads. */
  readonly bouncePages: number;
  /** The limits as a plain frozen object. */
  readonly limits: DmaLimits;
  /** The IOMMU domain whose I/O virtual addresses it hands out, or null: physical addresses. */
  readonly domain: IommuDomain | null;

  /** Use {@link BusDma.createTag}. */
  constructor(
    name: string,
    device: string,
    limits: DmaLimits,
    parent: DmaTag | null,
    bouncePages: number,
    domain?: IommuDomain | null,
  ) {
    if (domain === undefined) domain = null;
    this.domain = domain;
    this.name = name;
    this.device = device;
    this.limits = limits;
    this.minAddress = limits.minAddress;
    this.maxAddress = limits.maxAddress;
    this.alignment = limits.alignment;
    this.boundary = limits.boundary;
    this.maxSegments = limits.maxSegments;
    this.maxSegmentSize = limits.maxSegmentSize;
    this.maxTransfer = limits.maxTransfer;
    this.parent = parent;
    this.bouncePages = bouncePages;
  }

  /** True when `[pa, pa + len)` lies in the window and starts aligned. */
  reaches(pa: number, len: number): boolean {
    return pa >= this.minAddress && pa + len - 1 <= this.maxAddress &&
      Math.floor(pa / this.alignment) * this.alignment === pa;
  }

  /** A one-line description for the boot log. */
  describe(): string {
    const hex = (n: number) => "0x" + n.toString(16);
    const lim = (n: number, f: (n: number) => string = String) => n === DMA_NO_LIMIT ? "-" : f(n);
    return `window [${hex(this.minAddress)}, ${
      lim(this.maxAddress, hex)
    }] align ${this.alignment}` +
      ` boundary ${this.boundary === 0 ? "-" : hex(this.boundary)}` +
      ` segments ${lim(this.maxSegments)} of ${lim(this.maxSegmentSize)}` +
      ` maxtransfer ${lim(this.maxTransfer)} bounce ${this.bouncePages} page` +
      (this.bouncePages === 1 ? "" : "s") +
      (this.domain === null ? "" : `, I/O virtual (IOMMU domain ${this.domain.id})`);
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

/** The bounce pool and what is reserved of it. */
export interface BouncePoolStats {
  /** Pages in the pool. */
  pages: number;
  /** Physical address of its first page (0 when there is no pool). */
  base: number;
  /** Pages reserved by tags. */
  reserved: number;
  /** Pages of the reservations holding bounced data now. */
  inUse: number;
  /** The reservations, by tag. */
  tags: { tag: string; pages: number; inUse: number }[];
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
  /** Loads refused at once for want of bounce space in their tag's reservation. */
  bounceShortages: number;
  /** Loads that waited for bounce space. */
  bounceWaits: number;
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

/** What a map can be loaded from with {@link BusDma.loadAsync}. */
export type DmaSource =
  | { readonly kind: "kva"; readonly va: number; readonly len: number }
  | { readonly kind: "sg"; readonly list: readonly (readonly [number, number])[] }
  | { readonly kind: "phys"; readonly list: readonly (readonly [number, number])[] }
  | {
    readonly kind: "pages";
    readonly pages: PageRuns;
    readonly offset?: number;
    readonly len?: number;
  }
  | { readonly kind: "memory"; readonly mem: DmaMemory; readonly len?: number };

/**
 * What a map's current load holds besides its segments (bounce pieces and
 * runs, I/O virtual space, translated pieces and frames): bus_dma's own
 * bookkeeping, which the package does not export.
 */
export class MapLoad {
  /** Segments of the current load. */
  nsegs = 0;
  /** Bytes of the current load (0 when unloaded). */
  mapsize = 0;
  /** Bounce pieces: buffer offset, source address, bounce address, length; valid up to `nbounce`. */
  bounce: Float64Array;
  /** Bounce pieces of the current load. */
  nbounce = 0;
  /** Bounce space held: address, size pairs; valid up to `nruns`. */
  runs: Float64Array;
  /** Bounce runs of the current load. */
  nruns = 0;
  /** I/O virtual space the current load holds (its tag is translated), or 0. */
  iova = 0;
  /** Bytes of it (a page multiple), 0 when none. */
  iovaSize = 0;
  /** True when the I/O virtual space came from the domain's cached path ({@link IommuDomain.alloc}). */
  iovaCached = false;
  /** RAM mapped for a translated load: address, length pairs; valid up to `npieces`. */
  pieces: Float64Array;
  /** RAM pieces of the current translated load. */
  npieces = 0;
  /** The frame behind each I/O virtual page of a translated load (-1: none); valid up to `npages`. */
  frames: Float64Array;
  /** I/O virtual pages of the current translated load. */
  npages = 0;
  /** True once destroyed. */
  destroyed = false;

  constructor(maxSize: number, pageSize: number, translated: boolean) {
    const pieces = Math.ceil(maxSize / pageSize) + 1;
    this.bounce = new Float64Array(4 * pieces);
    this.runs = new Float64Array(2 * pieces);
    this.pieces = new Float64Array(translated ? 2 * pieces : 0);
    this.frames = new Float64Array(translated ? pieces : 0);
  }
}

let loadOf: (map: DmaMap) => MapLoad;

/** The bookkeeping of `map`'s current load (for bus_dma and its debugging). */
export function mapLoad(map: DmaMap): MapLoad {
  return loadOf(map);
}

/** One transfer's mapping: segments for the device, bounce records for sync. */
export class DmaMap {
  /** Name in messages (debugging, leaks). */
  readonly name: string;
  /** The tag it obeys. */
  readonly tag: DmaTag;
  /** Largest source it loads. */
  readonly maxSize: number;
  /** Segments it holds at most. */
  readonly maxSegs: number;
  /** True when a source whose segments do not fit bounces whole (see {@link BusDma}). */
  readonly bounceBuffer: boolean;
  /** Segment addresses and lengths, interleaved (`dm_segs`); valid up to `nsegs`. */
  readonly segs: Float64Array;
  readonly #load: MapLoad;

  static {
    loadOf = (map) => map.#load;
  }

  /** Use {@link BusDma.createMap}. */
  constructor(
    name: string,
    tag: DmaTag,
    maxSize: number,
    maxSegs: number,
    bounceBuffer: boolean,
    pageSize: number,
  ) {
    this.name = name;
    this.tag = tag;
    this.maxSize = maxSize;
    this.maxSegs = maxSegs;
    this.bounceBuffer = bounceBuffer;
    this.segs = new Float64Array(2 * maxSegs);
    this.#load = new MapLoad(maxSize, pageSize, tag.domain !== null);
  }

  /** Segments of the current load (`dm_nsegs`). */
  get nsegs(): number {
    return this.#load.nsegs;
  }

  /** Bytes of the current load, 0 when unloaded (`dm_mapsize`). */
  get mapsize(): number {
    return this.#load.mapsize;
  }

  /** True once destroyed. */
  get destroyed(): boolean {
    return this.#load.destroyed;
  }

  /** Address of segment `i`. */
  segAddr(i: number): number {
    return this.segs[2 * i]!;
  }

  /** Length of segment `i`. */
  segLen(i: number): number {
    return this.segs[2 * i + 1]!;
  }

  /** Bytes of the current load that go through bounce space. */
  get bouncedBytes(): number {
    const ld = this.#load;
    let n = 0;
    for (let i = 0; i < ld.nbounce; i++) n += ld.bounce[4 * i + 3]!;
    return n;
  }
}

/** A tag's share of the bounce pool. */
interface Reservation {
  /** Pool address and size of the share (0 size: none). */
  base: number;
  size: number;
  /** The share as an arena of its own; null without a share. */
  arena: Vmem | null;
  /** Loads waiting for room, woken by any unload of the tag that frees some. */
  waiters: (() => void)[];
  /** Live maps made on the tag. */
  maps: number;
}

// What a load's source was, for its refusals.
const SOURCE_KVA = 0, SOURCE_SG = 1, SOURCE_PHYS = 2, SOURCE_MEMORY = 3;

// What a load came to, beside the kernel's codes: room is short now, the
// reservation could never hold a run, a translated stretch cannot start
// aligned, or the domain has no room.
type LoadCode = KernelErrorCode | "SHORT" | "NEVER" | "ALIGN" | "NOSPACE" | null;

/** The kernel's bus_dma: tags, DMA memory, maps and the bounce pool. *
 * @example A device that reaches 16 MiB: load, sync, unload
 * ```ts
 * import { createMachine } from "../machine/mod.ts";
 * import { Kernel } from "../boot/mod.ts";
 * import { BUS_DMASYNC_POSTWRITE, BUS_DMASYNC_PREWRITE } from "./mod.ts";
 *
 * const kernel = new Kernel(createMachine({ preset: "pc" }), { log: () => {} });
 * const dma = kernel.busDma;
 * // A device that reaches the first 16 MiB only, 8-byte aligned, in at most 4 pieces.
 * const tag = dma.createTag("mydev", { maxAddress: 2 ** 24 - 1, alignment: 8, maxSegments: 4 });
 * const map = dma.createMap(tag, 16384, 4);
 * const buf = kernel.kmem.alloc(16384);
 * dma.load(map, buf, 16384); // bounce pages stand in where the buffer is out of reach
 * dma.sync(map, BUS_DMASYNC_PREWRITE); // the buffer's bytes now are where the device reads
 * for (let i = 0; i < map.nsegs; i++) {
 *   console.log(map.segs[2 * i]!.toString(16), map.segs[2 * i + 1]); // address, length
 * }
 * dma.sync(map, BUS_DMASYNC_POSTWRITE);
 * dma.unload(map);
 * dma.destroyMap(map);
 * dma.destroyTag(tag);
 * kernel.kmem.free(buf, 16384);
 * console.log(kernel.shutdown().pages); // 0
 * ```
 */
export class BusDma {
  /** DMA-API debugging: told of every load, sync and unload when set. */
  debug: DmaDebugHooks | null = null;

  readonly #be: DmaBackend;
  readonly #iommu: DmaIommu | null;
  readonly #stats: BusDmaStats = {
    loads: 0,
    segments: 0,
    bouncedBytes: 0,
    efbig: 0,
    bounceShortages: 0,
    bounceWaits: 0,
  };
  readonly #pages = new Float64Array(PAGE_BATCH);
  readonly #live = new Set<DmaMemory>();
  readonly #maps = new Set<DmaMap>();
  readonly #tags = new Map<DmaTag, Reservation>();
  #pool: Vmem | null = null;
  #poolList: PageRuns | null = null;
  #poolBase = 0;
  #poolPages = 0;
  #mapSerial = 0;

  // The load in progress (one at a time: loads are synchronous).
  #off = 0; // buffer offset of the next piece
  #mergeEnd = -1; // where the last in-place segment ends (-1: it cannot be continued)
  #runStart = -1; // first bounce piece of the open run (-1: none)
  #runLen = 0;
  #short = false;
  #never = false;
  #held = 0; // bounce bytes this load took
  #waiting = false; // the load may wait: a shortage is not counted as a refusal

  /**
   * bus_dma over `backend`, with a bounce pool of `bouncePages` pages
   * (default {@link DEFAULT_BOUNCE_PAGES}; 0 for none), taken as low in RAM
   * as it fits when the first tag reserves bounce pages (at boot, as the
   * drivers attach), and given back at {@link shutdown}; with `iommu`, the
   * tags of the devices it translates hand out I/O virtual addresses.
   */
  constructor(
    backend: DmaBackend,
    options?: { bouncePages?: number; iommu?: DmaIommu | null },
  ) {
    if (options === undefined) options = {};
    this.#be = backend;
    this.#iommu = options.iommu ?? null;
    this.#poolPages = checkInteger(
      "bouncePages",
      options.bouncePages ?? DEFAULT_BOUNCE_PAGES,
      0,
      2 ** 20,
    );
  }

  /** Counters of all loads and syncs. */
  get stats(): BusDmaStats {
    return { ...this.#stats };
  }

  /** The bounce pool (its size, and its place once taken) and its reservations. */
  get bouncePool(): BouncePoolStats {
    const tags: BouncePoolStats["tags"] = [];
    let reserved = 0, inUse = 0;
    const ps = this.#be.pageSize;
    for (const [tag, r] of this.#tags) {
      if (r.arena === null) continue;
      const used = r.arena.size(VMEM_ALLOC) / ps;
      reserved += r.size / ps;
      inUse += used;
      tags.push({ tag: tag.name, pages: r.size / ps, inUse: used });
    }
    return { pages: this.#poolPages, base: this.#poolBase, reserved, inUse, tags };
  }

  /** DMA memory still allocated. */
  get liveMemory(): number {
    return this.#live.size;
  }

  /** Maps made and not destroyed, by name. */
  get liveMaps(): string[] {
    return [...this.#maps].map((m) => m.name);
  }

  /** Tags made and not destroyed, by name. */
  get liveTags(): string[] {
    return [...this.#tags.keys()].map((t) => t.name);
  }

  /**
   * bus_dma_tag_create: a tag named `name` with `constraints`, narrowing
   * `options.parent` when given (see {@link DmaTagOptions}), with its bounce
   * reservation. Refused (EINVAL) when a field asks for more than the
   * parent, when the limits contradict each other, or (ENOMEM) when the
   * reservation does not fit the pool inside the tag's window.
   */
  createTag(name: string, constraints?: DmaConstraints, options?: DmaTagOptions): DmaTag {
    if (constraints === undefined) constraints = {};
    if (options === undefined) options = {};
    if (typeof name !== "string" || name === "") {
      throw new KernelError("EINVAL", `tag name must be a non-empty string, got ${describe(name)}`);
    }
    if (constraints === null || typeof constraints !== "object") {
      throw new KernelError(
        "EINVAL",
        `tag ${name}: constraints must be an object, got ${describe(constraints)}`,
      );
    }
    if (options === null || typeof options !== "object") {
      throw new KernelError(
        "EINVAL",
        `tag ${name}: options must be an object, got ${describe(options)}`,
      );
    }
    const parent = options.parent ?? null;
    if (parent !== null && (typeof parent !== "object" || typeof parent.maxAddress !== "number")) {
      throw new KernelError(
        "EINVAL",
        `tag ${name}: parent must be a tag or DMA limits, got ${describe(parent)}`,
      );
    }
    if (parent instanceof DmaTag && !this.#tags.has(parent)) {
      throw new KernelError("EINVAL", `tag ${name}: parent tag ${parent.name} is not live`);
    }
    const merged: DmaConstraints = {};
    for (const f of DMA_CONSTRAINT_FIELDS) {
      const v = constraints[f];
      if (v !== undefined) merged[f] = v;
      else if (parent !== null) merged[f] = parent[f];
    }
    let limits: DmaLimits;
    try {
      limits = dmaLimits(merged);
    } catch (e) {
      if (e instanceof MachineError) throw new KernelError("EINVAL", `tag ${name}: ${e.message}`);
      throw e;
    }
    if (parent !== null) {
      const of = parent instanceof DmaTag ? `tag ${parent.name}'s` : "its device's";
      for (const f of DMA_CONSTRAINT_FIELDS) {
        if (wider(f, limits[f], parent[f])) {
          throw new KernelError(
            "EINVAL",
            `tag ${name}: ${f} ${show(f, limits[f])} asks for more than ${of} ${
              show(f, parent[f])
            }`,
          );
        }
      }
    }
    const device = options.device ??
      (parent instanceof DmaTag ? parent.device : name);
    const domain = parent instanceof DmaTag
      ? parent.domain
      : parent !== null && options.device !== undefined
      ? this.#iommu?.domainOf(String(device)) ?? null
      : null;
    // Asked for, or by default one load's worth when the tag may need it
    // (a translated tag reaches all of RAM: it needs none).
    const pages = options.bouncePages !== undefined
      ? checkInteger("bouncePages", options.bouncePages, 0, 2 ** 20)
      : domain === null && this.#mayBounce(limits)
      ? this.#defaultReserve(limits)
      : 0;
    const tag = new DmaTag(
      name,
      String(device),
      limits,
      parent instanceof DmaTag ? parent : null,
      pages,
      domain,
    );
    this.#tags.set(tag, this.#reserve(tag, pages));
    return tag;
  }

  /**
   * A tag for the device of a machine's device table row (or any `name` and
   * `dma` limits) in one call: its limits, narrowed by `narrowing`.
   */
  tagForDevice(
    info: { readonly name: string; readonly dma: DmaLimits },
    narrowing?: DmaConstraints,
    options?: Omit<DmaTagOptions, "parent" | "device"> & { name?: string },
  ): DmaTag {
    if (narrowing === undefined) narrowing = {};
    if (options === undefined) options = {};
    if (info === null || typeof info !== "object") {
      throw new KernelError("EINVAL", `device must be a device table row, got ${describe(info)}`);
    }
    return this.createTag(options.name ?? info.name, narrowing, {
      parent: info.dma,
      device: info.name,
      bouncePages: options.bouncePages,
    });
  }

  /** bus_dma_tag_destroy: gives its reservation back. EBUSY while maps of it live. */
  destroyTag(tag: DmaTag): void {
    const r = this.#tags.get(tag);
    if (r === undefined) {
      throw new KernelError("EINVAL", `tag ${describe((tag as DmaTag)?.name)} is not live`);
    }
    if (r.maps > 0) {
      throw new KernelError("EBUSY", `tag ${tag.name} still has ${r.maps} maps`);
    }
    for (const t of this.#tags.keys()) {
      if (t.parent === tag) {
        throw new KernelError("EBUSY", `tag ${tag.name} is the parent of ${t.name}`);
      }
    }
    if (r.arena !== null) {
      r.arena.destroy();
      this.#pool!.xfree(r.base, r.size);
    }
    for (const w of r.waiters.splice(0)) w();
    this.#tags.delete(tag);
  }

  /**
   * bus_dmamem_alloc + bus_dmamem_map: `size` bytes the device can reach,
   * in at most `nsegs` physical segments (default: the tag's), aligned and
   * bounded as the tag says (or stricter), mapped in kernel space.
   */
  dmamemAlloc(
    tag: DmaTag,
    size: number,
    opts?: { alignment?: number; boundary?: number; nsegs?: number },
  ): DmaMemory {
    if (opts === undefined) opts = {};
    this.#liveTag(tag);
    checkInteger("size", size, 1);
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
    const nsegs = checkInteger("nsegs", opts.nsegs ?? Math.min(tag.maxSegments, 1 << 30), 1);
    const rounded = roundUp(size, ps);
    // A translated tag's device reaches any page through its domain.
    const low = tag.domain === null ? roundUp(tag.minAddress, ps) : 0;
    const high = tag.domain === null ? this.#clampHigh(tag) : this.#be.ramEnd;
    if (high <= low) {
      throw new KernelError("ENOMEM", `tag ${tag.name}'s window holds no RAM`);
    }
    const pages = this.#be.allocPages(rounded, low, high, alignment, boundary, nsegs);
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
    const mem: DmaMemory = Object.freeze({ tag, size: rounded, kva, segs, pages });
    this.#live.add(mem);
    return mem;
  }

  /** bus_dmamem_unmap + bus_dmamem_free. */
  dmamemFree(mem: DmaMemory): void {
    if (!this.#live.has(mem)) {
      throw new KernelError("BADFREE", `DMA memory at kva ${describe(mem?.kva)} is not allocated`);
    }
    this.#live.delete(mem);
    this.#be.unmapPages(mem.kva, mem.size);
    this.#be.freePages(mem.pages);
  }

  /**
   * bus_dmamap_create: a map for transfers of up to `size` bytes in up to
   * `nsegs` segments (both at most the tag's). With `bounceBuffer`, a source
   * whose segments do not fit the map bounces whole (rule 3 of the module
   * text) instead of being refused with EFBIG.
   */
  createMap(
    tag: DmaTag,
    size?: number,
    nsegs?: number,
    opts?: { bounceBuffer?: boolean; name?: string },
  ): DmaMap {
    if (size === undefined) size = tag?.maxTransfer;
    if (nsegs === undefined) nsegs = tag?.maxSegments;
    if (opts === undefined) opts = {};
    const r = this.#liveTag(tag);
    if (size === DMA_NO_LIMIT) {
      throw new KernelError(
        "EINVAL",
        `tag ${tag.name} has no longest transfer: give the map a size`,
      );
    }
    checkInteger("size", size, 1, tag.maxTransfer);
    checkInteger("nsegs", nsegs, 1, Math.min(tag.maxSegments, 1 << 20));
    if (opts.bounceBuffer === true && tag.bouncePages === 0) {
      throw new KernelError(
        "EINVAL",
        `tag ${tag.name} has no bounce reservation for a map with bounceBuffer`,
      );
    }
    const name = opts.name ?? `${tag.name}/map${++this.#mapSerial}`;
    const map = new DmaMap(name, tag, size, nsegs, opts.bounceBuffer === true, this.#be.pageSize);
    r.maps++;
    this.#maps.add(map);
    return map;
  }

  /** bus_dmamap_destroy. The map must be unloaded. */
  destroyMap(map: DmaMap): void {
    if (!this.#maps.has(map)) {
      throw new KernelError(
        "EINVAL",
        `map ${describe((map as DmaMap)?.name)} is not live (destroyed already?)`,
      );
    }
    const ld = loadOf(map);
    if (ld.mapsize !== 0) {
      throw new KernelError("EBUSY", `map ${map.name} is still loaded (${ld.mapsize} bytes)`);
    }
    this.#maps.delete(map);
    this.#tags.get(map.tag)!.maps--;
    ld.destroyed = true;
  }

  /**
   * bus_dmamap_load of the kernel buffer `[va, va + len)`. Refused (nothing
   * changed) with EFBIG when the segments do not fit, ENOMEM when the tag's
   * reservation has no room for its bounce runs now (or could never),
   * EINVAL when pieces out of reach have no reservation to bounce through
   * (or, translated, when a stretch cannot start aligned), EFAULT for an
   * unmapped buffer page, EBUSY for a loaded map; translated, ENOMEM when
   * the domain has no room.
   */
  load(map: DmaMap, va: number, len: number): void {
    this.#startLoad(map, len);
    this.#endLoad(map, len, this.#load(map, SOURCE_KVA, va, len, NO_LIST), SOURCE_KVA, va);
  }

  /**
   * bus_dmamap_load_uio / dma_map_sg: a scatter list of kernel buffers
   * (`[va, len]` entries), loaded as one transfer in list order; pieces of
   * consecutive entries merge where they are contiguous in RAM.
   */
  loadSg(map: DmaMap, list: readonly (readonly [number, number])[]): void {
    const len = this.#listLength("list", list);
    this.#startLoad(map, len);
    this.#endLoad(map, len, this.#load(map, SOURCE_SG, 0, len, list), SOURCE_SG, list.length);
  }

  /** bus_dmamap_load of raw physical ranges (`[pa, len]` entries), in order. */
  loadPhys(map: DmaMap, list: readonly (readonly [number, number])[]): void {
    const len = this.#listLength("list", list);
    for (const [pa, n] of list) {
      if (pa + n > this.#be.ramEnd) {
        throw new KernelError(
          "EFAULT",
          `physical range [${hexs(pa)}, +${n}) is past the end of RAM`,
        );
      }
    }
    this.#startLoad(map, len);
    this.#endLoad(map, len, this.#load(map, SOURCE_PHYS, 0, len, list), SOURCE_PHYS, list.length);
  }

  /**
   * bus_dmamap_load of a page list from uvm_pglistalloc: `len` bytes from
   * byte `offset` of the list (default: all of it).
   */
  loadPages(map: DmaMap, pages: PageRuns, offset?: number, len?: number): void {
    if (offset === undefined) offset = 0;
    const ranges = this.#rangesOfPages(pages);
    let total = 0;
    for (const [, n] of ranges) total += n;
    checkInteger("offset", offset, 0, total - 1);
    const want = len ?? total - offset;
    checkInteger("len", want, 1, total - offset);
    const list: [number, number][] = [];
    let skip = offset, left = want;
    for (const [pa, n] of ranges) {
      if (skip >= n) {
        skip -= n;
        continue;
      }
      const take = Math.min(n - skip, left);
      list.push([pa + skip, take]);
      skip = 0;
      left -= take;
      if (left === 0) break;
    }
    this.loadPhys(map, list);
  }

  /**
   * bus_dmamap_load_raw of DMA memory: the first `len` bytes of `mem`
   * (default all), which its own tag reaches by construction.
   */
  loadMemory(map: DmaMap, mem: DmaMemory, len?: number): void {
    if (len === undefined) len = mem?.size;
    if (!this.#live.has(mem)) {
      throw new KernelError("EINVAL", `DMA memory at kva ${describe(mem?.kva)} is not allocated`);
    }
    checkInteger("len", len, 1, mem.size);
    this.#startLoad(map, len);
    this.#endLoad(
      map,
      len,
      this.#load(map, SOURCE_MEMORY, 0, len, mem.segs),
      SOURCE_MEMORY,
      mem.kva,
    );
  }

  /**
   * Loads `source` (any kind above); with BUS_DMA_WAITOK (the default) a
   * load short of bounce space waits until a map of its tag gives some back,
   * and rejects with ECANCELED when `signal` aborts first; with
   * BUS_DMA_NOWAIT it rejects at once, as the synchronous loads throw. Every
   * other refusal rejects at once.
   */
  async loadAsync(
    map: DmaMap,
    source: DmaSource,
    flags?: number,
    signal?: AbortSignal,
  ): Promise<void> {
    if (flags === undefined) flags = BUS_DMA_WAITOK;
    if (flags !== BUS_DMA_WAITOK && flags !== BUS_DMA_NOWAIT) {
      throw new KernelError(
        "EINVAL",
        `flags must be BUS_DMA_WAITOK or BUS_DMA_NOWAIT, got ${describe(flags)}`,
      );
    }
    let waited = false;
    for (;;) {
      if (signal?.aborted) throw cancelled(map);
      this.#waiting = flags === BUS_DMA_WAITOK;
      try {
        this.#loadSource(map, source);
        return;
      } catch (e) {
        if (!(e instanceof KernelError) || !(e as ShortError).short || !this.#waiting) throw e;
      } finally {
        this.#waiting = false;
      }
      if (!waited) this.#stats.bounceWaits++;
      waited = true;
      await this.#waitRoom(map, signal);
    }
  }

  /**
   * bus_dmamap_sync: copies through the map's bounce space as `ops` asks,
   * for the bytes `[offset, offset + len)` of the load (default all).
   */
  sync(map: DmaMap, ops: number, offset?: number, len?: number): void {
    if (offset === undefined) offset = 0;
    if (!(map instanceof DmaMap)) {
      throw new KernelError("EINVAL", `sync of something that is not a map: ${describe(map)}`);
    }
    const ld = loadOf(map);
    if (ld.mapsize === 0) {
      this.debug?.misuse("sync-unloaded", map, 0, `sync of map ${map.name}, which is not loaded`);
      throw new KernelError("EINVAL", `sync of map ${map.name}, which is not loaded`);
    }
    checkInteger("ops", ops, 1, 15);
    checkInteger("offset", offset, 0, ld.mapsize - 1);
    const n = len ?? ld.mapsize - offset;
    checkInteger("len", n, 1, ld.mapsize - offset);
    const end = offset + n;
    const b = ld.bounce, be = this.#be;
    for (let i = 0; i < ld.nbounce; i++) {
      const at = b[4 * i]!, plen = b[4 * i + 3]!;
      const from = Math.max(at, offset), to = Math.min(at + plen, end);
      if (from >= to) continue;
      const src = b[4 * i + 1]! + (from - at), dst = b[4 * i + 2]! + (from - at);
      if (ops & BUS_DMASYNC_PREWRITE) {
        be.copy(dst, src, to - from);
        this.#stats.bouncedBytes += to - from;
      }
      if (ops & BUS_DMASYNC_POSTREAD) {
        be.copy(src, dst, to - from);
        this.#stats.bouncedBytes += to - from;
      }
    }
    this.debug?.synced(map, ops);
  }

  /**
   * bus_dmamap_unload: forgets the segments and gives the bounce space back;
   * a translated map's pages are unmapped, invalidated and their I/O
   * virtual space freed.
   */
  unload(map: DmaMap): void {
    if (!(map instanceof DmaMap)) {
      throw new KernelError("EINVAL", `unload of something that is not a map: ${describe(map)}`);
    }
    if (loadOf(map).mapsize === 0) {
      this.debug?.misuse("double-unload", map, 0, `unload of map ${map.name}, which is not loaded`);
      throw new KernelError("EINVAL", `unload of map ${map.name}, which is not loaded`);
    }
    this.debug?.unloaded(map);
    this.#abortLoad(map, true);
  }

  /**
   * Whether the device named `device` reaches the `nsegs` segments of
   * `segs` (address, length pairs) as it would drive them: always for a
   * device the IOMMU does not translate; for one it does, when its domain
   * maps every page of every segment (what a driver that ignored its tag
   * may have programmed is then not).
   */
  mappedFor(device: string, segs: ArrayLike<number>, nsegs: number): boolean {
    const d = this.#iommu?.domainOf(device) ?? null;
    if (d === null) return true;
    for (let i = 0; i < nsegs; i++) if (!d.mapped(segs[2 * i]!, segs[2 * i + 1]!)) return false;
    return true;
  }

  /**
   * At shutdown: gives the bounce pool back when no tag holds a reservation
   * and reports what was never given back (maps, DMA memory, tags).
   */
  shutdown(): { maps: string[]; memory: number; tags: string[] } {
    const leaks = { maps: this.liveMaps, memory: this.#live.size, tags: this.liveTags };
    this.debug?.shutdown([...this.#maps], [...this.#live]);
    let reserved = false;
    for (const r of this.#tags.values()) reserved ||= r.arena !== null;
    if (this.#pool !== null && !reserved) {
      this.#pool.destroy();
      this.#be.freePages(this.#poolList!);
      this.#pool = null;
      this.#poolList = null;
      this.#poolBase = 0;
    }
    return leaks;
  }

  /**
   * Verifies: reservations lie in the pool, their arenas are sound, every
   * loaded map's segments satisfy its tag and its bounce space lies in its
   * tag's reservation.
   */
  check(): void {
    const fail = (why: string): never => {
      throw new KernelError("CORRUPT", `BusDma.check: ${why}`);
    };
    this.#pool?.check();
    for (const [tag, r] of this.#tags) {
      if (r.arena === null) continue;
      r.arena.check();
      if (
        r.base < this.#poolBase ||
        r.base + r.size > this.#poolBase + this.#poolPages * this.#be.pageSize
      ) {
        fail(`tag ${tag.name}'s reservation lies outside the pool`);
      }
    }
    for (const map of this.#maps) {
      const ld = loadOf(map);
      if (ld.mapsize === 0) {
        if (ld.nsegs + ld.nbounce + ld.nruns !== 0) {
          fail(`unloaded map ${map.name} keeps records`);
        }
        continue;
      }
      if (ld.nsegs < 1 || ld.nsegs > map.maxSegs) {
        fail(`map ${map.name} has ${ld.nsegs} segments`);
      }
      let total = 0;
      for (let i = 0; i < ld.nsegs; i++) {
        const why = segmentProblem(map.tag.limits, map.segAddr(i), map.segLen(i));
        if (why !== null) fail(`map ${map.name} segment ${i}: ${why}`);
        total += map.segLen(i);
      }
      if (total !== ld.mapsize) {
        fail(`map ${map.name}'s segments hold ${total} of ${ld.mapsize} bytes`);
      }
      const r = this.#tags.get(map.tag)!;
      for (let i = 0; i < ld.nruns; i++) {
        const a = ld.runs[2 * i]!, s = ld.runs[2 * i + 1]!;
        if (a < r.base || a + s > r.base + r.size) {
          fail(`map ${map.name}'s bounce run lies outside its reservation`);
        }
      }
      if (map.tag.domain !== null) this.#checkIo(map, fail);
    }
  }

  /** A translated map: its segments lie in its I/O virtual space, whose pages map its frames. */
  #checkIo(map: DmaMap, fail: (why: string) => never): void {
    const ld = loadOf(map);
    const ps = this.#be.pageSize, d = map.tag.domain!;
    if (ld.iovaSize !== ld.npages * ps || ld.iovaSize === 0) {
      fail(`map ${map.name} holds ${ld.iovaSize} bytes of I/O space for ${ld.npages} pages`);
    }
    for (let i = 0; i < ld.nsegs; i++) {
      const a = map.segAddr(i);
      if (a < ld.iova || a + map.segLen(i) > ld.iova + ld.iovaSize) {
        fail(`map ${map.name} segment ${i} lies outside its I/O virtual space`);
      }
    }
    for (let k = 0; k < ld.npages; k++) {
      const f = ld.frames[k]!, got = d.extract(ld.iova + k * ps);
      if (got !== f) {
        fail(`map ${map.name}'s I/O page ${k} translates to ${hexs(got)}, not ${hexs(f)}`);
      }
    }
  }

  // ------------------------------------------------------------- the pool

  #allocPool(pages: number): void {
    const ps = this.#be.pageSize, size = pages * ps;
    const align = size >= 65536 ? 65536 : ps;
    const ramEnd = this.#be.ramEnd;
    let list: PageRuns | null = null;
    // As low as it fits: below 16 MiB, else below 4 GiB, else anywhere.
    for (const high of new Set([Math.min(MiB16, ramEnd), Math.min(GiB4, ramEnd), ramEnd])) {
      try {
        list = this.#be.allocPages(size, ps, high, align, 0, 1);
        break;
      } catch (e) {
        if (!(e instanceof KernelError) || e.code !== "ENOMEM") throw e;
      }
    }
    if (list === null) {
      throw new KernelError("ENOMEM", `no room in RAM for a bounce pool of ${pages} pages`);
    }
    this.#poolList = list;
    this.#poolBase = list.runs[0]![0] * ps;
    this.#pool = Vmem.create("bounce", this.#poolBase, size, ps);
  }

  /** True when RAM lies outside the window, or pieces may start misaligned. */
  #mayBounce(l: DmaLimits): boolean {
    return l.minAddress > 0 || l.maxAddress < this.#be.ramEnd - 1 || l.alignment > 1;
  }

  /** Pages a tag reserves by default: one load of its longest transfer (capped). */
  #defaultReserve(l: DmaLimits): number {
    const ps = this.#be.pageSize;
    const reachesAll = l.minAddress === 0 && l.maxAddress >= this.#be.ramEnd - 1;
    // Reaching all of RAM, only a misaligned first piece can bounce.
    if (reachesAll && l.alignment <= ps) return 1;
    if (l.maxTransfer === DMA_NO_LIMIT) return BOUNCE_RESERVE_MAX;
    return Math.min(Math.ceil(l.maxTransfer / ps) + 1, BOUNCE_RESERVE_MAX);
  }

  /** Carves `pages` of the pool for `tag`, inside its window, aligned for its runs. */
  #reserve(tag: DmaTag, pages: number): Reservation {
    const r: Reservation = { base: 0, size: 0, arena: null, waiters: [], maps: 0 };
    if (pages === 0) return r;
    const ps = this.#be.pageSize, size = pages * ps;
    if (this.#pool === null && this.#poolPages > 0) this.#allocPool(this.#poolPages);
    let align = Math.max(ps, tag.alignment);
    if (tag.boundary > ps) align = Math.max(align, Math.min(tag.boundary, pow2AtLeast(size)));
    const base = this.#pool === null ? 0 : this.#pool.xalloc(
      size,
      align,
      0,
      0,
      Math.max(roundUp(tag.minAddress, ps), this.#poolBase),
      tag.maxAddress >= this.#poolBase + this.#poolPages * ps
        ? 0
        : Math.floor((tag.maxAddress + 1) / ps) * ps,
      VM_NOSLEEP,
    );
    if (base === 0) {
      const b = this.bouncePool;
      throw new KernelError(
        "ENOMEM",
        `tag ${tag.name}: no room for a ${pages}-page bounce reservation aligned to ${align} ` +
          `within [${hexs(tag.minAddress)}, ${hexs(tag.maxAddress)}] in the bounce pool ` +
          `(${b.pages} pages at ${
            hexs(b.base)
          }, ${b.reserved} reserved); boot with more bounce pages`,
      );
    }
    r.base = base;
    r.size = size;
    r.arena = Vmem.create(`bounce ${tag.name}`, base, size, ps);
    return r;
  }

  // ------------------------------------------------------------- loads

  #liveTag(tag: DmaTag): Reservation {
    const r = tag instanceof DmaTag ? this.#tags.get(tag) : undefined;
    if (r === undefined) {
      throw new KernelError(
        "EINVAL",
        `tag ${describe((tag as DmaTag)?.name ?? tag)} is not a live tag`,
      );
    }
    return r;
  }

  #loadSource(map: DmaMap, s: DmaSource): void {
    if (s === null || typeof s !== "object") {
      throw new KernelError("EINVAL", `DMA source must be an object, got ${describe(s)}`);
    }
    switch (s.kind) {
      case "kva":
        return this.load(map, s.va, s.len);
      case "sg":
        return this.loadSg(map, s.list);
      case "phys":
        return this.loadPhys(map, s.list);
      case "pages":
        return this.loadPages(map, s.pages, s.offset, s.len);
      case "memory":
        return this.loadMemory(map, s.mem, s.len);
      default:
        throw new KernelError(
          "EINVAL",
          `unknown DMA source kind ${describe((s as { kind: unknown }).kind)}`,
        );
    }
  }

  #waitRoom(map: DmaMap, signal?: AbortSignal): Promise<void> {
    const r = this.#tags.get(map.tag)!;
    return new Promise((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener("abort", abort);
        resolve();
      };
      const abort = () => {
        const i = r.waiters.indexOf(wake);
        if (i >= 0) r.waiters.splice(i, 1);
        reject(cancelled(map));
      };
      r.waiters.push(wake);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }

  /** Checks an entry list; returns its total length. */
  #listLength(name: string, list: readonly (readonly [number, number])[]): number {
    if (!Array.isArray(list) || list.length === 0) {
      throw new KernelError(
        "EINVAL",
        `${name} must be a non-empty array of [address, length], got ${describe(list)}`,
      );
    }
    let total = 0;
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      if (!Array.isArray(e) || e.length !== 2) {
        throw new KernelError(
          "EINVAL",
          `${name}[${i}] must be [address, length], got ${describe(e)}`,
        );
      }
      checkInteger(`${name}[${i}] address`, e[0]);
      checkInteger(`${name}[${i}] length`, e[1], 1);
      total += e[1];
    }
    return total;
  }

  #rangesOfPages(pages: PageRuns): [number, number][] {
    const runs = pages?.runs;
    if (!Array.isArray(runs) || runs.length === 0) {
      throw new KernelError(
        "EINVAL",
        `pages must be a page list with runs, got ${describe(pages)}`,
      );
    }
    const ps = this.#be.pageSize;
    return runs.map(([pfn, n], i) => {
      checkInteger(`pages.runs[${i}] frame`, pfn);
      checkInteger(`pages.runs[${i}] count`, n, 1);
      return [pfn * ps, n * ps];
    });
  }

  #startLoad(map: DmaMap, len: number): void {
    if (!(map instanceof DmaMap) || !this.#maps.has(map)) {
      throw new KernelError(
        "EINVAL",
        `load of a map that is not live: ${describe((map as DmaMap)?.name ?? map)}`,
      );
    }
    const ld = loadOf(map);
    if (ld.mapsize !== 0) {
      this.debug?.misuse(
        "load-loaded",
        map,
        map.segAddr(0),
        `load of map ${map.name}, which is loaded`,
      );
      throw new KernelError("EBUSY", `map ${map.name} is already loaded (${ld.mapsize} bytes)`);
    }
    checkInteger("len", len, 1);
    if (len > map.maxSize) {
      this.#stats.efbig++;
      throw new KernelError(
        "EFBIG",
        `a load of ${len} bytes exceeds map ${map.name}'s ${map.maxSize}`,
      );
    }
    this.#restart(map);
  }

  /** Empties the map and the load state for a (new) walk. */
  #restart(map: DmaMap): void {
    const ld = loadOf(map);
    this.#releaseIo(map);
    this.#releaseRuns(map, false);
    ld.nsegs = 0;
    ld.nbounce = 0;
    this.#off = 0;
    this.#mergeEnd = -1;
    this.#runStart = -1;
    this.#runLen = 0;
    this.#short = false;
    this.#never = false;
    this.#held = 0;
  }

  /** Ends a walk that went through: closes a bounce run still open (EFBIG if it does not fit). */
  #closeWalk(map: DmaMap, code: LoadCode): LoadCode {
    if (code === null && this.#runStart >= 0 && !this.#closeRun(map)) return "EFBIG";
    return code;
  }

  /**
   * Finishes a walk: the load stands, or the map is emptied and the refusal
   * thrown, naming the source (`kind` and `a`: a buffer's address, or a
   * list's length; worded only on failure).
   */
  #endLoad(map: DmaMap, len: number, code: LoadCode, kind: number, a: number): void {
    const ld = loadOf(map);
    if (code === null && this.#never) code = map.tag.bouncePages === 0 ? "EINVAL" : "NEVER";
    if (code === null && this.#short) code = "SHORT";
    if (code === null) {
      ld.mapsize = len;
      this.#stats.loads++;
      this.#stats.segments += ld.nsegs;
      this.debug?.loaded(map);
      return;
    }
    const t = map.tag;
    this.#abortLoad(map, false);
    const what = kind === SOURCE_KVA
      ? `buffer [${hexs(a)}, +${len})`
      : kind === SOURCE_SG
      ? `scatter list of ${a} buffers`
      : kind === SOURCE_MEMORY
      ? `DMA memory at kva ${hexs(a)}`
      : `${a} physical ranges`;
    switch (code) {
      case "EFAULT":
        throw new KernelError("EFAULT", `${what} has an unmapped page`);
      case "ALIGN":
        throw new KernelError(
          "EINVAL",
          `${what} has a piece that starts off tag ${t.name}'s ${t.alignment}-byte alignment ` +
            `in its page, which no I/O virtual address can change`,
        );
      case "NOSPACE":
        throw new KernelError(
          "ENOMEM",
          `IOMMU domain ${t.domain!.id} (${t.device}) has no room for ${what} ` +
            `within tag ${t.name}'s window`,
        );
      case "EINVAL":
        throw new KernelError(
          "EINVAL",
          `tag ${t.name} cannot reach all of ${what} and has no bounce reservation`,
        );
      case "NEVER":
        throw new KernelError(
          "ENOMEM",
          `${what} needs more bounce space in one run than tag ${t.name}'s reservation of ` +
            `${t.bouncePages} pages can ever hold`,
        );
      case "SHORT": {
        if (!this.#waiting) this.#stats.bounceShortages++;
        const e = new KernelError(
          "ENOMEM",
          `tag ${t.name}'s bounce reservation (${t.bouncePages} pages) has no room now for ${what}`,
        ) as ShortError;
        e.short = true;
        throw e;
      }
      default:
        this.#stats.efbig++;
        throw new KernelError(
          "EFBIG",
          `${what} (${len} bytes) does not fit in ${map.maxSegs} segments of tag ${t.name} ` +
            `(maxSegmentSize ${show("maxSegmentSize", t.maxSegmentSize)}, ` +
            `boundary ${show("boundary", t.boundary)})`,
        );
    }
  }

  /**
   * Gives the map's bounce space back; with `wake`, wakes the loads waiting
   * for room in the tag's reservation (not when a load gives back what it
   * took a moment ago: that makes no room that was not there).
   */
  #releaseRuns(map: DmaMap, wake: boolean): void {
    const ld = loadOf(map);
    if (ld.nruns === 0) return;
    const r = this.#tags.get(map.tag)!;
    for (let i = 0; i < ld.nruns; i++) r.arena!.xfree(ld.runs[2 * i]!, ld.runs[2 * i + 1]!);
    ld.nruns = 0;
    if (wake) { for (const w of r.waiters.splice(0)) w(); }
  }

  #abortLoad(map: DmaMap, wake: boolean): void {
    const ld = loadOf(map);
    this.#releaseIo(map);
    this.#releaseRuns(map, wake);
    ld.nbounce = 0;
    ld.nsegs = 0;
    ld.mapsize = 0;
  }

  /** Unmaps a translated load's pages (invalidating them) and frees its I/O virtual space. */
  #releaseIo(map: DmaMap): void {
    const ld = loadOf(map);
    ld.npieces = 0;
    if (ld.iovaSize !== 0) this.#unmapIo(map, ld.npages);
    ld.npages = 0;
  }

  /** Unmaps the mapped pages of the map's first `upTo` I/O pages, then frees its space. */
  #unmapIo(map: DmaMap, upTo: number): void {
    const ld = loadOf(map);
    const d = map.tag.domain!;
    this.#pageRuns(map, upTo, false);
    if (ld.iovaCached) d.free(ld.iova, ld.iovaSize);
    else d.xfree(ld.iova, ld.iovaSize);
    ld.iova = 0;
    ld.iovaSize = 0;
  }

  /**
   * Maps (or unmaps, without `enter`) each run of the map's first `upTo`
   * I/O pages that have a frame. A refused mapping unmaps the runs before
   * it, frees the space and is rethrown.
   */
  #pageRuns(map: DmaMap, upTo: number, enter: boolean): void {
    const ld = loadOf(map);
    const d = map.tag.domain!, ps = this.#be.pageSize, frames = ld.frames;
    for (let j = 0; j < upTo;) {
      if (frames[j]! < 0) {
        j++;
        continue;
      }
      let k = j + 1;
      while (k < upTo && frames[k]! >= 0) k++;
      if (!enter) d.unmap(ld.iova + j * ps, (k - j) * ps);
      else {
        try {
          d.mapPages(ld.iova + j * ps, frames, k - j, IOPTE_READ | IOPTE_WRITE, j);
        } catch (e) {
          this.#unmapIo(map, j);
          throw e;
        }
      }
      j = k;
    }
  }

  /**
   * A load's walk and its outcome: through the IOMMU for a translated tag;
   * otherwise rules 1 and 2, and rule 3 when the segments do not fit a map
   * with `bounceBuffer`. The source is `kind` with `va` (a kernel buffer)
   * or `list` (entries), `len` bytes of it.
   */
  #load(
    map: DmaMap,
    kind: number,
    va: number,
    len: number,
    list: readonly (readonly [number, number])[],
  ): LoadCode {
    if (map.tag.domain !== null) {
      try {
        return this.#loadIo(map, kind, va, len, list);
      } catch (e) {
        this.#abortLoad(map, false);
        throw e;
      }
    }
    let code = this.#closeWalk(map, this.#walk(map, kind, va, len, list, false));
    if (code === "EFBIG" && map.bounceBuffer) {
      this.#restart(map);
      code = this.#closeWalk(map, this.#walk(map, kind, va, len, list, true));
    }
    return code;
  }

  #walk(
    map: DmaMap,
    kind: number,
    va: number,
    len: number,
    list: readonly (readonly [number, number])[],
    force: boolean,
  ): LoadCode {
    if (kind === SOURCE_KVA) return this.#walkKva(map, va, len, force);
    if (kind === SOURCE_SG) return this.#walkSg(map, list, force);
    return this.#walkPhys(map, list, len, force);
  }

  /**
   * A translated load (rules 1' and 2'): the source's RAM pieces gathered,
   * laid out in I/O virtual space and cut into segments, then mapped. When
   * the layout does not fit (or cannot start aligned) and the map has
   * `bounceBuffer`, the source bounces whole (rule 3) and the bounce space
   * is laid out and mapped instead.
   */
  #loadIo(
    map: DmaMap,
    kind: number,
    va: number,
    len: number,
    list: readonly (readonly [number, number])[],
  ): LoadCode {
    const ld = loadOf(map);
    let code = kind === SOURCE_KVA
      ? this.#gatherKva(map, va, len)
      : kind === SOURCE_SG
      ? this.#gatherSg(map, list)
      : this.#gatherList(map, list, len);
    if (code === null) code = this.#layOut(map);
    if ((code === "EFBIG" || code === "ALIGN") && map.bounceBuffer) {
      this.#restart(map);
      code = this.#closeWalk(map, this.#walk(map, kind, va, len, list, true));
      if (code === null && !this.#short && !this.#never) {
        for (let i = 0; i < ld.nbounce; i++) {
          this.#addPiece(map, ld.bounce[4 * i + 2]!, ld.bounce[4 * i + 3]!);
        }
        code = this.#layOut(map);
      }
    }
    if (code === null && !this.#short && !this.#never) code = this.#mapIo(map);
    return code;
  }

  /** The RAM pieces of a kernel buffer, in order, into the map's pieces. */
  #gatherKva(map: DmaMap, va: number, len: number): LoadCode {
    const ps = this.#be.pageSize, kva = this.#be.kva, pages = this.#pages;
    if (typeof va !== "number" || !Number.isInteger(va)) return "EFAULT";
    let inPage = va - Math.floor(va / ps) * ps, off = 0;
    while (off < len) {
      const batch = Math.min(len - off, PAGE_BATCH * ps - inPage);
      const want = Math.ceil((inPage + batch) / ps);
      const got = kva.extractPages(va + off, batch, pages);
      for (let i = 0; i < got; i++) {
        const room = ps - inPage, rest = len - off;
        const n = rest < room ? rest : room;
        this.#addPiece(map, pages[i]! + inPage, n);
        off += n;
        inPage = 0;
      }
      if (got < want) return "EFAULT";
    }
    return null;
  }

  #gatherSg(map: DmaMap, list: readonly (readonly [number, number])[]): LoadCode {
    for (const [va, len] of list) {
      const code = this.#gatherKva(map, va, len);
      if (code !== null) return code;
    }
    return null;
  }

  /** The first `limit` bytes of physical ranges, into the map's pieces. */
  #gatherList(map: DmaMap, list: readonly (readonly [number, number])[], limit: number): LoadCode {
    let left = limit;
    for (let e = 0; e < list.length && left > 0; e++) {
      const take = Math.min(list[e]![1], left);
      this.#addPiece(map, list[e]![0], take);
      left -= take;
    }
    return null;
  }

  /** Appends the RAM piece `[pa, pa + n)` to the map's pieces, joining it to the last when it follows. */
  #addPiece(map: DmaMap, pa: number, n: number): void {
    const ld = loadOf(map);
    const k = ld.npieces;
    if (k > 0 && ld.pieces[2 * k - 2]! + ld.pieces[2 * k - 1]! === pa) {
      ld.pieces[2 * k - 1]! += n;
      return;
    }
    if (2 * (k + 1) > ld.pieces.length) ld.pieces = grown(ld.pieces);
    ld.pieces[2 * k] = pa;
    ld.pieces[2 * k + 1] = n;
    ld.npieces = k + 1;
  }

  /**
   * Rule 1': lays the map's pieces out in I/O virtual space from 0 (the
   * allocation's start, aligned as {@link #mapIo} aligns it, so the cuts
   * fall where they will): records the frame of each I/O page and appends
   * the segments. EFBIG when they do not fit, ALIGN when a stretch cannot
   * start aligned.
   */
  #layOut(map: DmaMap): LoadCode {
    const ld = loadOf(map);
    const ps = this.#be.pageSize, align = map.tag.alignment;
    const stretch = Math.max(ps, align), pieces = ld.pieces;
    ld.nsegs = 0;
    let c = 0, prevEnd = -1, np = 0;
    for (let i = 0; i < ld.npieces; i++) {
      const pa = pieces[2 * i]!, n = pieces[2 * i + 1]!;
      const inPage = pa - Math.floor(pa / ps) * ps;
      const follows = i > 0 &&
        (pa === prevEnd || (inPage === 0 && c === Math.floor(c / ps) * ps)) &&
        this.#takes(map, c, n);
      if (!follows) {
        c = roundUp(c, stretch) + inPage;
        if (Math.floor(c / align) * align !== c) return "ALIGN";
        for (const first = Math.floor(c / ps); np < first; np++) this.#frame(map, np, -1);
      }
      for (let p = pa, r = c, left = n; left > 0;) {
        const idx = Math.floor(r / ps), o = r - idx * ps, take = Math.min(left, ps - o);
        if (idx >= np) {
          this.#frame(map, idx, p - o);
          np = idx + 1;
        }
        p += take;
        r += take;
        left -= take;
      }
      if (!this.#addSeg(map, c, n, follows)) return "EFBIG";
      c += n;
      prevEnd = pa + n;
    }
    ld.npages = np;
    return null;
  }

  #frame(map: DmaMap, k: number, pa: number): void {
    const ld = loadOf(map);
    if (k >= ld.frames.length) ld.frames = grown(ld.frames);
    ld.frames[k] = pa;
  }

  /**
   * Rule 2': takes the layout's I/O virtual space from the domain (within
   * the tag's window; aligned, and kept inside one boundary window or
   * aligned to the boundary), maps its pages read-write and moves the
   * segments there. NOSPACE when the domain has no room.
   */
  #mapIo(map: DmaMap): LoadCode {
    const ld = loadOf(map);
    const tag = map.tag, d = tag.domain!, ps = this.#be.pageSize;
    const size = ld.npages * ps, b = tag.boundary;
    let align = Math.max(ps, tag.alignment), nocross = 0;
    if (b > align) {
      if (size <= b) nocross = b;
      else align = b;
    }
    const minaddr = tag.minAddress > d.base ? roundUp(tag.minAddress, ps) : 0;
    const top = Math.floor((tag.maxAddress + 1) / ps) * ps;
    const maxaddr = top < d.base + d.size ? top : 0;
    const cached = align === ps && nocross === 0 && minaddr === 0 && maxaddr === 0;
    const base = cached ? d.alloc(size) : d.xalloc(size, align, nocross, minaddr, maxaddr);
    if (base === 0) return "NOSPACE";
    ld.iova = base;
    ld.iovaSize = size;
    ld.iovaCached = cached;
    this.#pageRuns(map, ld.npages, true);
    const segs = map.segs;
    for (let i = 0; i < ld.nsegs; i++) segs[2 * i]! += base;
    return null;
  }

  /**
   * The walk of a kernel buffer: the pmap hands over its physical pages a
   * batch at a time, taken in order exactly as one pmap_extract each would
   * be, so a refusal names the first page that causes one.
   */
  #walkKva(map: DmaMap, va: number, len: number, force: boolean): LoadCode {
    const ld = loadOf(map);
    const ps = this.#be.pageSize;
    const kva = this.#be.kva;
    const pages = this.#pages;
    const tag = map.tag;
    // The tag's window and alignment, read once. Remainders by these powers
    // of two go through floor, not `%`: on addresses past 2^31 `%` is a
    // floating-point remainder, a slow call.
    const low = tag.minAddress, high = tag.maxAddress, align = tag.alignment;
    const boundary = tag.boundary, maxSegSize = tag.maxSegmentSize, maxSegs = map.maxSegs;
    const segs = map.segs;
    if (typeof va !== "number" || !Number.isInteger(va)) return "EFAULT"; // no page maps it
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
    // The load's state, kept in locals on the common paths and handed to
    // the fields around the general one.
    let k = ld.nsegs, mergeEnd = this.#mergeEnd, bOff = this.#off;
    let open = force || this.#runStart >= 0;
    let off = 0;
    while (off < len) {
      const batch = Math.min(len - off, PAGE_BATCH * ps - inPage);
      const want = Math.ceil((inPage + batch) / ps);
      const got = kva.extractPages(va + off, batch, pages);
      for (let i = 0; i < got; i++) {
        const room = ps - inPage, rest = len - off;
        const n = rest < room ? rest : room;
        const pa = pages[i]! + inPage;
        off += n;
        inPage = 0;
        // The common cases, written out, for a piece in reach with no bounce
        // run open: one that continues the last segment and fits in it
        // (pieces fit one segment and never cross a boundary window, so
        // only the length and the window of the segment's start matter),
        // and one that starts a new segment aligned, fitting one segment.
        // A continuation the last segment cannot take starts a segment of
        // its own, aligned (a page start, or a boundary).
        if (!open && pa >= low && pa + n - 1 <= high) {
          const continues = pa === mergeEnd;
          if (
            continues && piecesFit && segs[2 * k - 1]! + n <= maxSegSize &&
            (boundary === 0 || segs[2 * k - 2]! >= Math.floor(pa * perBoundary) * boundary)
          ) {
            segs[2 * k - 1]! += n;
            mergeEnd = pa + n;
            bOff += n;
            continue;
          }
          if (
            (!continues || piecesFit) &&
            ((room === ps && alignPages) || align === 1 ||
              Math.floor(pa * perAlign) * align === pa) &&
            (piecesFit || (n <= maxSegSize &&
              (boundary === 0 || pa - Math.floor(pa * perBoundary) * boundary + n <= boundary)))
          ) {
            if (k === maxSegs) return "EFBIG"; // the map is emptied on the way out
            segs[2 * k] = pa;
            segs[2 * k + 1] = n;
            k++;
            mergeEnd = pa + n;
            bOff += n;
            continue;
          }
        }
        ld.nsegs = k;
        this.#mergeEnd = mergeEnd;
        this.#off = bOff;
        const placed = this.#piece(map, pa, n, force);
        k = ld.nsegs;
        mergeEnd = this.#mergeEnd;
        bOff = this.#off;
        open = force || this.#runStart >= 0;
        if (!placed) return "EFBIG";
      }
      ld.nsegs = k;
      this.#mergeEnd = mergeEnd;
      this.#off = bOff;
      if (got < want) return "EFAULT";
    }
    return null;
  }

  #walkSg(map: DmaMap, list: readonly (readonly [number, number])[], force: boolean): LoadCode {
    for (const [va, len] of list) {
      const code = this.#walkKva(map, va, len, force);
      if (code !== null) return code;
    }
    return null;
  }

  /**
   * The walk of physical ranges, `limit` bytes of them. A range that starts
   * a page, in reach and aligned, with no bounce run open, goes to the
   * segments whole when the tag cuts only at page multiples: the cuts land
   * where the page-by-page walk would put them.
   */
  #walkPhys(
    map: DmaMap,
    list: readonly (readonly [number, number])[],
    limit: number,
    force: boolean,
  ): LoadCode {
    const ps = this.#be.pageSize, tag = map.tag;
    const pageCuts = tag.maxSegmentSize % ps === 0 && (tag.boundary === 0 || tag.boundary >= ps);
    let left = limit;
    for (let e = 0; e < list.length && left > 0; e++) {
      const start = list[e]![0], take = Math.min(list[e]![1], left);
      left -= take;
      if (
        !force && pageCuts && this.#runStart < 0 && start !== this.#mergeEnd &&
        Math.floor(start / ps) * ps === start && start >= tag.minAddress &&
        start + take - 1 <= tag.maxAddress &&
        Math.floor(start / tag.alignment) * tag.alignment === start
      ) {
        if (!this.#addRange(map, start, take)) return "EFBIG";
        this.#mergeEnd = start + take;
        this.#off += take;
        continue;
      }
      for (let pa = start, rest = take; rest > 0;) {
        const n = Math.min(rest, ps - (pa - Math.floor(pa / ps) * ps));
        if (!this.#piece(map, pa, n, force)) return "EFBIG";
        pa += n;
        rest -= n;
      }
    }
    return null;
  }

  /**
   * Places one piece (rules 1 and 2): in place, continuing or starting a
   * segment, or onto the open bounce run. False when the segments run out.
   */
  #piece(map: DmaMap, pa: number, n: number, force: boolean): boolean {
    const ld = loadOf(map);
    const tag = map.tag;
    if (!force && pa >= tag.minAddress && pa + n - 1 <= tag.maxAddress) {
      const continues = this.#runStart < 0 && pa === this.#mergeEnd && this.#takes(map, pa, n);
      if (continues || Math.floor(pa / tag.alignment) * tag.alignment === pa) {
        if (this.#runStart >= 0 && !this.#closeRun(map)) return false;
        if (!this.#addSeg(map, pa, n, continues)) return false;
        this.#mergeEnd = pa + n;
        this.#off += n;
        return true;
      }
    }
    if (this.#runStart < 0) {
      this.#runStart = ld.nbounce;
      this.#runLen = 0;
    }
    if (4 * (ld.nbounce + 1) > ld.bounce.length) {
      const grown = new Float64Array(2 * ld.bounce.length);
      grown.set(ld.bounce);
      ld.bounce = grown;
    }
    const b = 4 * ld.nbounce++;
    ld.bounce[b] = this.#off;
    ld.bounce[b + 1] = pa;
    ld.bounce[b + 2] = -1;
    ld.bounce[b + 3] = n;
    this.#runLen += n;
    this.#off += n;
    return true;
  }

  /**
   * Whether the last segment (which ends at `pa`) takes the piece `[pa,
   * pa + n)` up to the next boundary without passing the longest segment
   * size: a piece it does not take starts a segment of its own, which must
   * then start aligned.
   */
  #takes(map: DmaMap, pa: number, n: number): boolean {
    const b = map.tag.boundary;
    const upTo = b === 0 ? n : Math.min(n, Math.floor(pa / b) * b + b - pa);
    return map.segs[2 * loadOf(map).nsegs - 1]! + upTo <= map.tag.maxSegmentSize;
  }

  /**
   * Ends the open bounce run: takes contiguous bounce space for it from the
   * tag's reservation (or, when there is none now, goes on with the same
   * segments at a stand-in address so that EFBIG is still decided), points
   * its pieces there and appends its segments, unmerged. False when the
   * segments run out.
   */
  #closeRun(map: DmaMap): boolean {
    const ld = loadOf(map);
    const tag = map.tag, ps = this.#be.pageSize;
    const len = this.#runLen, size = roundUp(len, ps);
    let align = Math.max(ps, tag.alignment), nocross = 0;
    if (tag.boundary !== 0 && tag.boundary >= ps) {
      if (len <= tag.boundary) nocross = tag.boundary;
      else align = Math.max(align, tag.boundary);
    }
    let base = 0;
    if (!this.#short && !this.#never) {
      const r = this.#tags.get(tag)!;
      if (r.arena === null || size > r.size) this.#never = true;
      else {
        base = r.arena.xalloc(size, align, 0, nocross, 0, 0, VM_NOSLEEP);
        if (base === 0) {
          // Room held by other loads may come back; room this load holds,
          // or none at all, never will.
          if (r.arena.size(VMEM_ALLOC) === this.#held) this.#never = true;
          else this.#short = true;
        } else {
          if (2 * (ld.nruns + 1) > ld.runs.length) {
            const grown = new Float64Array(2 * ld.runs.length);
            grown.set(ld.runs);
            ld.runs = grown;
          }
          ld.runs[2 * ld.nruns] = base;
          ld.runs[2 * ld.nruns + 1] = size;
          ld.nruns++;
          this.#held += size;
        }
      }
    }
    if (base !== 0) {
      let at = base;
      for (let i = this.#runStart; i < ld.nbounce; i++) {
        ld.bounce[4 * i + 2] = at;
        at += ld.bounce[4 * i + 3]!;
      }
    }
    this.#runStart = -1;
    this.#mergeEnd = -1;
    // A stand-in at 0 is aligned to everything, as the real space would be.
    return this.#addSeg(map, base, len, false);
  }

  /**
   * Appends `[pa, pa + n)` to the map's segments, merging with the last one
   * when `merge` allows and it is contiguous, splitting at the boundary and
   * the longest segment size (_bus_dmamap_addseg). False when the segments
   * run out.
   */
  #addSeg(map: DmaMap, pa: number, n: number, merge: boolean): boolean {
    const ld = loadOf(map);
    const tag = map.tag, segs = map.segs;
    const boundary = tag.boundary, maxSegSize = tag.maxSegmentSize;
    while (n > 0) {
      let take = n;
      // Start of the boundary window `pa` is in; `take` stays inside it.
      let window = 0;
      if (boundary !== 0) {
        window = Math.floor(pa / boundary) * boundary;
        take = Math.min(take, window + boundary - pa);
      }
      const last = ld.nsegs - 1;
      // Merge with the last segment when it ends at `pa`, stays short enough
      // and lies in the same boundary window.
      if (
        merge && last >= 0 && segs[2 * last]! + segs[2 * last + 1]! === pa &&
        segs[2 * last + 1]! + take <= maxSegSize &&
        (boundary === 0 || segs[2 * last]! >= window)
      ) {
        segs[2 * last + 1]! += take;
      } else {
        take = Math.min(take, maxSegSize);
        if (ld.nsegs === map.maxSegs) return false;
        segs[2 * ld.nsegs] = pa;
        segs[2 * ld.nsegs + 1] = take;
        ld.nsegs++;
      }
      pa += take;
      n -= take;
      merge = true;
    }
    return true;
  }

  /**
   * Appends `[pa, pa + n)` as new segments, cut where #addSeg would cut it
   * (no merge with the segment before): when the tag's cuts are regular
   * (every boundary, or every longest segment) the cuts are written out in
   * one pass. False when the segments run out.
   */
  #addRange(map: DmaMap, pa: number, n: number): boolean {
    const ld = loadOf(map);
    const b = map.tag.boundary, m = map.tag.maxSegmentSize;
    const step = b === 0 ? m : m >= b ? b : 0;
    if (step === 0) return this.#addSeg(map, pa, n, false);
    const segs = map.segs, maxSegs = map.maxSegs, end = pa + n;
    let k = ld.nsegs, a = pa;
    let next = b === 0 ? a + step : Math.floor(a / b) * b + b;
    while (a < end) {
      if (k === maxSegs) {
        ld.nsegs = k;
        return false;
      }
      const e = next < end ? next : end;
      segs[2 * k] = a;
      segs[2 * k + 1] = e - a;
      k++;
      a = e;
      next += step;
    }
    ld.nsegs = k;
    return true;
  }

  #clampHigh(tag: DmaTag): number {
    return Math.min(tag.maxAddress + 1, this.#be.ramEnd);
  }
}

/** An ENOMEM a wait may cure. */
interface ShortError extends KernelError {
  short?: boolean;
}

function cancelled(map: DmaMap): KernelError {
  return new KernelError(
    "ECANCELED",
    `load of map ${map.name} cancelled while waiting for bounce space`,
  );
}

/** Whether `child` asks for more than `parent` in field `f`. */
function wider(f: keyof DmaConstraints, child: number, parent: number): boolean {
  switch (f) {
    case "minAddress":
      return child < parent;
    case "alignment":
      return child < parent;
    case "boundary":
      return parent !== 0 && (child === 0 || child > parent);
    default:
      return child > parent;
  }
}

function show(f: keyof DmaConstraints, v: number): string {
  if (v === DMA_NO_LIMIT && f !== "minAddress") return "(no limit)";
  if (f === "boundary" && v === 0) return "0 (none)";
  return f === "minAddress" || f === "maxAddress" || f === "boundary" ? hexs(v) : String(v);
}

function hexs(n: number): string {
  return typeof n === "number" && Number.isInteger(n) ? "0x" + n.toString(16) : describe(n);
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** `a` copied into one twice as long (at least 8). */
function grown(a: Float64Array): Float64Array {
  const g = new Float64Array(Math.max(2 * a.length, 8));
  g.set(a);
  return g;
}

const NO_LIST: readonly (readonly [number, number])[] = Object.freeze([]);

function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
