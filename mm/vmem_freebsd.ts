/**
 * vmem, FreeBSD's flavor: the arena allocator of FreeBSD's `subr_vmem.c`,
 * decision for decision, beside the illumos arena of vmem.ts.
 *
 * Theory. An arena hands out integers from spans, each span cut into free
 * and allocated segments (boundary tags). One list, the segment list, holds
 * every tag: spans in the order they were added or imported, each followed
 * by its segments in address order. Unlike illumos, every size is rounded up
 * to the quantum and kept rounded: an allocated segment is the rounded size
 * and a free may name any size that rounds to it.
 *
 * Free segments sit on 90 free lists by size in quanta `n`: list `n - 1` for
 * `n <= 32`, list `flsl(n) + 25` above, so lists 0-30 hold one size each and
 * the others a power-of-two range. A segment always enters its list at the
 * head. Best-fit scans from the size's own list upward, each list in list
 * order, and takes the first segment that is large enough and where the
 * request fits (not the smallest). First-fit starts a list higher when the
 * size is not the smallest of its list, looks only at each list's head and,
 * when that fails, goes on as best-fit for the rest of the request. Carving
 * puts the left remainder, then the right one, at the heads of their lists.
 * A free coalesces with the next free segment, then the previous one; a
 * segment that then fills a whole imported span goes back to the source.
 * When a search fails the arena imports a span (constrained requests too),
 * then calls its reclaim callback, then fails or waits.
 *
 * Data: a tag is an index into typed arrays: start and size side by side in
 * a Float64Array (exact to 2^53), four links in an Int32Array (segment list
 * next and prev; free-list next and prev for a free tag, hash chain next for
 * an allocated one), the type in a Uint8Array. Indices 0-89 are the free-list
 * heads, 90 anchors the segment list. A three-word bitmap says which free
 * lists are non-empty, so searches skip empty lists (as FreeBSD's loop does,
 * only faster). Allocated tags are hashed by start address. Unused tags form
 * a pool that grows by doubling and is topped up before each step, as the
 * FreeBSD's `bt_fill` does, so no step runs out half-way.
 *
 * Invariants (checked by `check()`): the segment list alternates spans and
 * the segments that tile them exactly; spans do not overlap; no two free
 * segments are adjacent; every free segment is on the list of its size and
 * the bitmap says which lists hold any; every allocated segment is in the
 * hash; the sizes and counts agree with the segments; the pool holds the
 * rest; every item of a quantum cache is an allocated segment of its size
 * marked cached, held by that cache once, and no other segment is marked.
 *
 * Cost: a free is O(1) (hash, neighbours, list head); first-fit looks at
 * one head per non-empty list; best-fit and constrained requests scan the
 * lists from the size's own. Steady-state requests create no JS object; the
 * address travels through a one-element Float64Array so that V8 does not box
 * it between calls.
 *
 * Quantum caches (vmem_freebsd_qcache.ts): an arena created with `qcacheMax`
 * fronts the sizes up to it, at most VMEM_QCACHE_IDX_MAX quanta, with one
 * UMA-like zone per multiple of the quantum. `alloc` of such a size asks the
 * zone of its rounded size first, without sleeping, and goes to the segments
 * only when the zone has nothing; `free` of such a size gives the segment to
 * the zone. A zone fills its buckets with `xalloc`s of its size from address
 * VMEM_ADDR_QCACHE_MIN (1) on, with the caller's policy and M_NOWAIT, and
 * gives items back with `xfree`. A segment a zone holds stays allocated in
 * the arena (its tag marked cached, so a second free is refused). A request
 * that finds no room and cannot import drains the zones' bucket lists before
 * the reclaim callback; `destroy` first gives back everything the zones hold.
 * `xalloc` and `xfree` never meet the caches.
 *
 * Sleeping requests (M_WAITOK) that would wait: the synchronous calls refuse
 * them with WOULDBLOCK and leave the arenas as they were; `allocWait` and
 * `xallocWait` wait for a free or a `wakeup()` and go on as best-fit, as the
 * FreeBSD's loop does after `cv_wait`. To undo what a sleeping request did
 * before it would wait (imports, in this arena and down its sources), it
 * keeps a journal: an arena is copied whole just before the request first
 * changes it other than by its final carve, its quantum caches with it.
 * Imports made through custom functions are given back through the release
 * function. If the reclaim callback or an import function changed a
 * journaled arena itself, or a drain gave a span back through a custom
 * release function, the request keeps what it did (as FreeBSD, which undoes
 * nothing, does).
 *
 * @module
 */

import { highbit as flsl, isPow2, TWO32 } from "../machine/bits.ts";
import { checkInteger, checkSpan, describe, KernelError, MAX_ADDR } from "./errors.ts";
import { VMEM_ALLOC, VMEM_FREE, VMEM_SPAN } from "./vmem.ts";
import { WaitQueue } from "./waitq.ts";
import {
  type FreeBSDQcacheStats,
  QcacheZone,
  type QcacheZoneState,
  type ZoneSource,
} from "./vmem_freebsd_qcache.ts";

// ---- Flags (FreeBSD <sys/malloc.h> and <sys/vmem.h>) ----

/** Fail rather than wait. */
export const M_NOWAIT = 0x0001;
/** Wait until the request can be satisfied (a request without M_NOWAIT waits). */
export const M_WAITOK = 0x0002;
/** First-fit: the head of each list large enough, then best-fit. */
export const M_FIRSTFIT = 0x1000;
/** Best-fit (the default): the first segment that fits, scanning from the size's list. */
export const M_BESTFIT = 0x2000;
/** Next-fit: later FreeBSD's; this revision has none (refused with UNSUPPORTED). */
export const M_NEXTFIT = 0x8000;
/** `size` type: the smallest size of the highest non-empty free list. */
export const VMEM_MAXFREE = 0x10;
/** Quantum caches an arena may have: `qcacheMax` is capped at this many quanta. */
export const VMEM_QCACHE_IDX_MAX = 16;
/** The lowest address a quantum cache imports (UMA takes 0 for "no item"). */
const VMEM_ADDR_QCACHE_MIN = 1;

const FITMASK = M_BESTFIT | M_FIRSTFIT;
const ALLOC_FLAGS = M_NOWAIT | M_WAITOK | FITMASK;

// ---- Layout of the tag arrays ----

/** Free lists: VMEM_MAXORDER for a 64-bit vmem_size_t. */
const NLISTS = 90;
/** Anchor of the segment list. */
const ANCHOR = NLISTS;
const FIRST_TAG = NLISTS + 1;
const NIL = -1;
/** Spare tags kept before each step (FreeBSD's BT_MAXALLOC). */
const BT_MAXALLOC = 4;
const HASH_MIN = 16;

const BT_SPAN = 1;
const BT_SPAN_STATIC = 2;
const BT_FREE = 3;
const BT_BUSY = 4;
/** An allocated segment a quantum cache holds. */
const BT_CACHED = 5;

/**
 * `roundup2(size, q)` for a power-of-two quantum `q` whose reciprocal is
 * `invQ`: with a 32-bit mask while the sum fits, which costs less than a
 * division and a ceiling.
 */
function roundup2(size: number, q: number, invQ: number): number {
  const t = size + q - 1;
  return t <= 0x7fffffff ? t & -q : Math.ceil(size * invQ) * q;
}

/** `SIZE2ORDER` of a size in quanta (>= 1). */
function order(qsize: number): number {
  if (qsize <= 32) return qsize - 1;
  return qsize < 0x80000000 ? 57 - Math.clz32(qsize) : flsl(qsize) + 25;
}

/** `ORDER2SIZE`: the smallest size in quanta on free list `i`. */
function orderSize(i: number): number {
  return i < 32 ? i + 1 : 2 ** (i - 26);
}

/** `roundup(x, y)` for any y >= 1, exact for integers up to 2^53. */
function roundupAny(x: number, y: number): number {
  const r = x % y;
  return r === 0 ? x : x - r + y;
}

/** `v` is an integer in [0, 2^53 - 1] (checkInteger's test, cheap enough to inline). */
function isAddr(v: number): boolean {
  return typeof v === "number" && v >= 0 && v <= MAX_ADDR && Math.floor(v) === v;
}

/** Imports a span of `size` for an arena: its base, or -1. */
export type FreeBSDImportFn = (source: VmemFreeBSD, size: number, flags: number) => number;
/** Gives an imported span back. */
export type FreeBSDReleaseFn = (source: VmemFreeBSD, addr: number, size: number) => void;
/** The space-exhaustion callback of an arena (`vmem_reclaim_t`). */
export type FreeBSDReclaimFn = (arena: VmemFreeBSD, flags: number) => void;

/**
 * Sees what an arena's own allocations and frees do to its segments: the
 * trace a replay without quantum caches needs to decide as the arena did.
 * Requests that arenas importing from this one make, `xalloc` and `xfree`
 * are not seen.
 */
export interface VmemFreeBSDTracer {
  /**
   * An allocation of `size` that returned `addr` (-1: none): an `alloc` or
   * `allocWait` the caches did not serve, or an item a cache imported (FreeBSD
   * imports those from address 1, which decides otherwise only in an arena
   * with a segment at 0). `flags` is M_NOWAIT and the policy of the search
   * that decided: first-fit only when first-fit found the segment, best-fit
   * once the request searched again after a wait or a drain.
   */
  alloc(size: number, flags: number, addr: number): void;
  /** A free of `size` at `addr`: a `free` the caches did not take, or an item a cache gave back. */
  free(addr: number, size: number): void;
}

/** Options of {@link VmemFreeBSD.create}. */
export interface VmemFreeBSDCreateOptions {
  /** Largest size served by quantum caches (0: none). */
  qcacheMax?: number;
  /** Arena to import from (as `vmem_set_import` with `vmem_alloc`/`vmem_free`). */
  source?: VmemFreeBSD;
  /** Import quantum (default: the larger of the two quanta). Needs `source`. */
  importQuantum?: number;
  /** Custom import function (default: allocation in the source). Needs `source`. */
  importFn?: FreeBSDImportFn;
  /** Custom release function (default: free in the source; null: never release). */
  releaseFn?: FreeBSDReleaseFn | null;
}

/** Options of {@link VmemFreeBSD.setImport}. */
export interface FreeBSDImportOptions {
  /** Imports a span (default: `vmem_alloc` in the source with the caller's flags). */
  importFn?: FreeBSDImportFn;
  /** Releases a wholly free imported span (default: `vmem_free` in the source; null: never). */
  releaseFn?: FreeBSDReleaseFn | null;
}

/** What a sleeping request met when it would wait; `arena` is the arena it would wait on. */
class WouldBlock extends KernelError {
  readonly arena: VmemFreeBSD;
  constructor(arena: VmemFreeBSD) {
    super("WOULDBLOCK", `a sleeping allocation in arena '${arena.name}' would wait for a free`);
    this.arena = arena;
  }
}

/** A copy of everything an arena's requests change. */
interface ArenaState {
  ss: Float64Array<ArrayBuffer>;
  lk: Int32Array<ArrayBuffer>;
  ty: Uint8Array<ArrayBuffer>;
  hash: Int32Array<ArrayBuffer>;
  scalars: number[];
  zones: QcacheZoneState[];
}

/** What a tracer is told once a sleeping request keeps what it did. */
interface TraceEvent {
  vm: VmemFreeBSD;
  free: boolean;
  addr: number;
  size: number;
  flags: number;
}

/**
 * The journal of one sleeping request: the arenas it copied before changing
 * them (with the journal each was under before), and its custom imports.
 */
class Journal {
  active = false;
  conflict = false;
  readonly arenas: VmemFreeBSD[] = [];
  readonly prev: (Journal | null)[] = [];
  readonly states: ArenaState[] = [];
  readonly imports: {
    release: FreeBSDReleaseFn;
    source: VmemFreeBSD;
    addr: number;
    size: number;
  }[] = [];
  /** What the journaled arenas' tracers are to be told if the request keeps its changes. */
  readonly events: TraceEvent[] = [];

  begin(): void {
    this.active = true;
    this.conflict = false;
  }
}

/** A vmem arena of FreeBSD's flavor. */
export class VmemFreeBSD {
  /** Arena name. */
  readonly name: string;
  /** The unit of allocation (a power of two). */
  readonly quantum: number;
  /** Largest size served by quantum caches (0: none). */
  readonly qcacheMax: number;
  /**
   * Told of the allocations and frees that reach the segments (null: no
   * one); see {@link VmemFreeBSDTracer}.
   */
  tracer: VmemFreeBSDTracer | null = null;

  private readonly invQuantum: number;
  private dead = false;

  // Tag arrays.
  private cap = 0;
  /** Start and size of tag i at 2i and 2i + 1. */
  private ss = new Float64Array(0);
  /** Segment-list next/prev and free-list (or hash) next/prev of tag i at 4i .. 4i + 3. */
  private lk = new Int32Array(0);
  private ty = new Uint8Array(0);
  private pool = NIL;
  private npool = 0;
  /** Non-empty free lists: 0-31, 32-63, 64-89. */
  private fm0 = 0;
  private fm1 = 0;
  private fm2 = 0;

  private hash: Int32Array = new Int32Array(HASH_MIN).fill(NIL);
  private hashMask = HASH_MIN - 1;

  /** vm_size, vm_inuse, vm_nbusytag. */
  private vmSize = 0;
  private inuse = 0;
  private nbusy = 0;
  /** Imported spans held, and their bytes. */
  private nimported = 0;
  private importedBytes = 0;

  // Import, limit, reclaim.
  private importSrc: VmemFreeBSD | null = null;
  private importFn: FreeBSDImportFn | null = null;
  private releaseFn: FreeBSDReleaseFn | null = null;
  private importQuantum = 0;
  private lastSource: VmemFreeBSD | null = null;
  /** Arenas whose source or last source is this one. */
  private readonly importers = new Set<VmemFreeBSD>();
  private limit = 0;
  private reclaimFn: FreeBSDReclaimFn | null = null;

  /** Requests waiting for a free (`vm_cv`). */
  private readonly cv = new WaitQueue();
  /** The journal this arena was copied into by the running sleeping request, if any. */
  private jr: Journal | null = null;
  private readonly ownJournal = new Journal();

  /** The address a request returns (-1: none), read at once by the caller. */
  private readonly out = new Float64Array(1);

  /** The quantum caches: zone i serves sizes of i + 1 quanta. */
  private readonly zones: QcacheZone<Journal | null>[] = [];
  /** Searches made again after a drain or the reclaim callback made room. */
  private retries = 0;
  /** What the running traced nosleep request is to tell its tracer at its end. */
  private deferred: TraceEvent[] | null = null;

  private constructor(name: string, quantum: number, nqcache: number) {
    this.name = name;
    this.quantum = quantum;
    this.invQuantum = 1 / quantum;
    this.grow(FIRST_TAG + 37);
    for (let i = 0; i < NLISTS; i++) this.lk[4 * i + 2] = NIL;
    this.lk[4 * ANCHOR] = this.lk[4 * ANCHOR + 1] = ANCHOR;
    // qc_init: a zone per multiple of the quantum, named as FreeBSD names them.
    this.qcacheMax = nqcache * quantum;
    const src: ZoneSource<Journal | null> = {
      importItems: (z, store, count, flags, jr) => this.importItems(z, store, count, flags, jr),
      releaseItems: (z, store, count, jr) => this.releaseItems(z, store, count, jr),
    };
    for (let i = 1; i <= nqcache; i++) {
      this.zones.push(new QcacheZone(`${name}-${i * quantum}`, i * quantum, src));
    }
  }

  /**
   * `vmem_create`: a new arena called `name` whose first span is
   * `[base, base + size)` (size 0: none; base 0 is a valid start), with
   * quantum caches for the sizes up to `qcacheMax` (capped, as `qc_init`
   * caps it, at VMEM_QCACHE_IDX_MAX quanta). With `source` it imports from
   * that arena (`vmem_set_import`). Refuses (EINVAL) a quantum that is not a
   * power of two, a misaligned span or one ending past 2^53 - 1, a
   * `qcacheMax` that is not an integer multiple of the quantum in
   * [0, 2^53 - 1], and what {@link setImport} refuses.
   */
  static create(
    name: string,
    base: number,
    size: number,
    quantum: number,
    opts: VmemFreeBSDCreateOptions = {},
  ): VmemFreeBSD {
    if (typeof name !== "string") {
      throw new KernelError("EINVAL", `name must be a string, got ${describe(name)}`);
    }
    if (typeof opts !== "object" || opts === null) {
      throw new KernelError("EINVAL", `options must be an object, got ${describe(opts)}`);
    }
    checkInteger("quantum", quantum, 1);
    if (!isPow2(quantum)) {
      throw new KernelError("EINVAL", `quantum must be a power of two, got ${describe(quantum)}`);
    }
    checkInteger("base", base);
    checkInteger("size", size);
    if (size !== 0) checkSpan(base, size, quantum, 0);
    const qcacheMax = checkInteger("qcacheMax", opts.qcacheMax ?? 0);
    if (qcacheMax % quantum !== 0) {
      throw new KernelError(
        "EINVAL",
        `qcacheMax ${describe(qcacheMax)} is not a multiple of quantum ${quantum}`,
      );
    }
    const source = opts.source;
    if (source === undefined) {
      if (
        opts.importQuantum !== undefined || opts.importFn !== undefined ||
        opts.releaseFn !== undefined
      ) {
        throw new KernelError("EINVAL", `import options of '${name}' need a source arena`);
      }
    } else {
      if (!(source instanceof VmemFreeBSD)) {
        throw new KernelError("EINVAL", `source must be an arena, got ${describe(source)}`);
      }
      source.live();
      if (quantum > source.quantum) {
        throw new KernelError(
          "EINVAL",
          `quantum ${quantum} of '${name}' exceeds quantum ${source.quantum} of its source '${source.name}'`,
        );
      }
      if (size !== 0) source.checkNoOverlap([base, size], true, "the source chain");
    }
    const vm = new VmemFreeBSD(name, quantum, Math.min(qcacheMax / quantum, VMEM_QCACHE_IDX_MAX));
    if (source !== undefined) {
      vm.setImport(source, opts.importQuantum ?? Math.max(quantum, source.quantum), {
        importFn: opts.importFn,
        releaseFn: opts.releaseFn,
      });
    }
    if (size !== 0) vm.add1(base, size, BT_SPAN_STATIC);
    return vm;
  }

  // ---- Configuration ----

  /**
   * `vmem_set_import`: imports spans from `source` (null: no imports),
   * sizes rounded up to `importQuantum`, by `vmem_alloc` and `vmem_free` in
   * the source or the given functions. Refuses (EINVAL) an import quantum
   * that is not a non-zero multiple of the quantum, a source with a smaller
   * quantum, an import cycle (also through sources of spans still held) and
   * static spans that overlap spans of the source chain; refuses (EBUSY) a
   * new source while spans imported from another are held.
   */
  setImport(
    source: VmemFreeBSD | null,
    importQuantum: number,
    fns: FreeBSDImportOptions = {},
  ): void {
    this.live();
    if (source === null) {
      checkInteger("importQuantum", importQuantum);
      const old = this.importSrc;
      this.importSrc = null;
      this.importFn = null;
      this.releaseFn = null;
      this.importQuantum = importQuantum;
      this.unlink(old);
      return;
    }
    if (!(source instanceof VmemFreeBSD)) {
      throw new KernelError("EINVAL", `source must be an arena or null, got ${describe(source)}`);
    }
    source.live();
    if (typeof fns !== "object" || fns === null) {
      throw new KernelError("EINVAL", `import functions must be an object, got ${describe(fns)}`);
    }
    const { importFn, releaseFn } = fns;
    if (importFn !== undefined && typeof importFn !== "function") {
      throw new KernelError("EINVAL", `importFn must be a function, got ${describe(importFn)}`);
    }
    if (releaseFn !== undefined && releaseFn !== null && typeof releaseFn !== "function") {
      throw new KernelError(
        "EINVAL",
        `releaseFn must be a function or null, got ${describe(releaseFn)}`,
      );
    }
    checkInteger("importQuantum", importQuantum, 1);
    if (importQuantum % this.quantum !== 0) {
      throw new KernelError(
        "EINVAL",
        `import quantum ${describe(importQuantum)} is not a multiple of quantum ${this.quantum}`,
      );
    }
    if (this.quantum > source.quantum) {
      throw new KernelError(
        "EINVAL",
        `quantum ${this.quantum} of '${this.name}' exceeds quantum ${source.quantum} of its source '${source.name}'`,
      );
    }
    if (source === this || source.related(true).includes(this)) {
      throw new KernelError(
        "EINVAL",
        `'${this.name}' importing from '${source.name}' would be an import cycle`,
      );
    }
    if (this.nimported !== 0 && this.lastSource !== source) {
      throw new KernelError(
        "EBUSY",
        `arena '${this.name}' holds spans imported from '${this.lastSource?.name ?? "?"}'`,
      );
    }
    // Static spans of this arena and of those importing from it must not
    // overlap spans of the new source chain.
    const below = this.related(false);
    below.push(this);
    const statics: number[] = [];
    for (const d of below) d.collectSpans(statics, true);
    source.checkNoOverlap(statics, true, "the source chain");
    const oldSrc = this.importSrc, oldLast = this.lastSource;
    this.importSrc = source;
    this.importFn = importFn ?? null;
    this.releaseFn = releaseFn === undefined ? defaultRelease : releaseFn;
    this.importQuantum = importQuantum;
    this.lastSource = source;
    source.importers.add(this);
    this.unlink(oldSrc);
    this.unlink(oldLast);
    this.cv.broadcast();
  }

  /** `vmem_set_limit`: imports may not grow the arena past `limit` bytes (0: no limit). */
  setLimit(limit: number): void {
    this.live();
    this.limit = checkInteger("limit", limit);
    this.cv.broadcast();
  }

  /**
   * `vmem_set_reclaim`: `fn(arena, flags)` is called when a request finds no
   * room and cannot import; the request retries if free space grew.
   */
  setReclaim(fn: FreeBSDReclaimFn | null): void {
    this.live();
    if (fn !== null && typeof fn !== "function") {
      throw new KernelError("EINVAL", `reclaim must be a function or null, got ${describe(fn)}`);
    }
    this.reclaimFn = fn;
    this.cv.broadcast();
  }

  /** The arena spans are imported from now, if any. */
  get source(): VmemFreeBSD | null {
    return this.importSrc;
  }

  // ---- Requests ----

  /**
   * `vmem_add`: adds the static span `[base, base + size)`. Refuses (EINVAL)
   * size 0, a misaligned span, one ending past 2^53 - 1 and one overlapping
   * a span of this arena or of an arena it imports from or that imports from
   * it.
   */
  add(base: number, size: number): void {
    this.enter();
    checkInteger("base", base);
    checkInteger("size", size, 1);
    checkSpan(base, size, this.quantum, 0);
    this.checkNoOverlap([base, size], false, "a related arena");
    if (this.npool < BT_MAXALLOC) this.grow(2 * this.cap);
    this.add1(base, size, BT_SPAN_STATIC);
    this.cv.broadcast();
  }

  /**
   * `vmem_alloc`: `size` units (rounded up to the quantum) with M_BESTFIT
   * (the default) or M_FIRSTFIT, and M_NOWAIT or M_WAITOK. A size up to
   * {@link qcacheMax} is asked of its quantum cache first (without sleeping),
   * and of the segments when the cache has nothing. Returns the address (0
   * is one; never from a cache), or -1 when M_NOWAIT finds no room. A
   * request that would wait throws KernelError("WOULDBLOCK") and leaves the
   * arenas as they were (use {@link allocWait} to wait).
   */
  alloc(size: number, flags: number): number {
    if (
      typeof size === "number" && size >= 1 && size <= MAX_ADDR && Math.floor(size) === size &&
      typeof flags === "number" && (flags & ~FITMASK) === M_NOWAIT &&
      (flags & FITMASK) !== FITMASK && (flags | 0) === flags &&
      this.jr === null && !this.dead && this.tracer === null
    ) {
      if (size <= this.qcacheMax) {
        // uma_zalloc's first step, the pop of the alloc bucket, written out.
        const z = this.zones[((size - 1) * this.invQuantum) | 0]!;
        const n = z.allocCount;
        if (n > 0) {
          const bt = z.allocBucket[n - 1]!;
          z.allocCount = n - 1;
          z.nAlloc++;
          this.ty[bt] = BT_BUSY;
          return this.ss[2 * bt]!;
        }
        if (this.zoneAlloc(z, flags, null)) return this.out[0]!;
      }
      this.allocPlain(size, flags);
    } else {
      this.request(false, size, 0, 0, 0, 0, 0, flags, false);
    }
    return this.out[0]!;
  }

  /**
   * `vmem_xalloc`: `size` units at `phase` from an `align` boundary (0: the
   * quantum), not crossing a `nocross` boundary (0: any), inside
   * `[minaddr, maxaddr)` (0: no limit; FreeBSD's own maxaddr is inclusive).
   * Refuses (EINVAL) what FreeBSD panics on: parameters that are not
   * multiples of the quantum, align or nocross not a power of two, phase not
   * below align, a rounded size that crosses nocross at phase, minaddr not
   * below maxaddr. Returns and sleeps as {@link alloc}.
   */
  xalloc(
    size: number,
    align: number,
    phase: number,
    nocross: number,
    minaddr: number,
    maxaddr: number,
    flags: number,
  ): number {
    this.request(true, size, align, phase, nocross, minaddr, maxaddr, flags, false);
    return this.out[0]!;
  }

  /**
   * A sleeping {@link alloc} that waits (as `cv_wait` does) for a free or a
   * {@link wakeup} and goes on, as best-fit from then on. Rejects with
   * ECANCELED when `signal` aborts. With M_NOWAIT it is {@link alloc}.
   */
  allocWait(size: number, flags: number, signal?: AbortSignal): Promise<number> {
    return this.waitLoop(false, size, 0, 0, 0, 0, 0, flags, signal);
  }

  /** The waiting form of {@link xalloc} (see {@link allocWait}). */
  xallocWait(
    size: number,
    align: number,
    phase: number,
    nocross: number,
    minaddr: number,
    maxaddr: number,
    flags: number,
    signal?: AbortSignal,
  ): Promise<number> {
    return this.waitLoop(true, size, align, phase, nocross, minaddr, maxaddr, flags, signal);
  }

  /**
   * `vmem_free` of what {@link alloc} returned: `size` may be any size that
   * rounds up to the allocated one. A size up to {@link qcacheMax} at an
   * address other than 0 goes to the quantum cache of its rounded size,
   * which takes any allocated segment of that size. Refuses (BADFREE,
   * nothing changed) an address that is not allocated, one already in a
   * cache, and a size that rounds differently: the arena's segment hash
   * answers, whether or not the free goes to a cache.
   */
  free(addr: number, size: number): void {
    if (
      typeof size === "number" && size <= this.qcacheMax && size >= 1 &&
      Math.floor(size) === size && typeof addr === "number" && addr >= VMEM_ADDR_QCACHE_MIN &&
      addr <= MAX_ADDR && Math.floor(addr) === addr
    ) {
      this.cacheFree(addr, size);
      return;
    }
    this.xfree(addr, size);
    if (this.tracer !== null) this.traceFree(addr, size);
  }

  /**
   * `vmem_xfree` of what {@link xalloc} returned: to the segments, never a
   * cache. Refusals as {@link free}.
   */
  xfree(addr: number, size: number): void {
    if (
      !(typeof addr === "number" && typeof size === "number" && addr >= 0 && addr <= MAX_ADDR &&
        Math.floor(addr) === addr && size >= 1 && size <= MAX_ADDR && Math.floor(size) === size)
    ) {
      checkInteger("addr", addr);
      checkInteger("size", size, 1);
    }
    if (this.jr !== null || this.dead) this.enter();
    this.out[0] = addr;
    this.xfreeCore(size, null);
  }

  /**
   * `vmem_size`: bytes allocated (VMEM_ALLOC), free (VMEM_FREE), both, or
   * with VMEM_MAXFREE alone the smallest size of the highest non-empty free
   * list (not the largest free segment). Refuses (EINVAL) any other mask.
   */
  size(typemask: number): number {
    this.live();
    switch (typemask) {
      case VMEM_ALLOC:
        return this.inuse;
      case VMEM_FREE:
        return this.vmSize - this.inuse;
      case VMEM_ALLOC | VMEM_FREE:
        return this.vmSize;
      case VMEM_MAXFREE: {
        const i = this.highestList();
        return i < 0 ? 0 : orderSize(i) * this.quantum;
      }
      default:
        throw new KernelError(
          "EINVAL",
          `size type mask must be VMEM_ALLOC, VMEM_FREE, both, or VMEM_MAXFREE, got ${
            describe(typemask)
          }`,
        );
    }
  }

  /** `vmem_roundup_size`: `size` rounded up to the quantum. */
  roundupSize(size: number): number {
    checkInteger("size", size);
    return Math.ceil(size * this.invQuantum) * this.quantum;
  }

  /** FreeBSD's vmem has no `vmem_contains`: refused with UNSUPPORTED. */
  contains(addr: number, size: number): boolean {
    throw new KernelError(
      "UNSUPPORTED",
      `FreeBSD's vmem has no contains (arena '${this.name}', addr ${describe(addr)}, size ${
        describe(size)
      })`,
    );
  }

  /**
   * Calls `fn(start, size, type)` for each tag whose type is in `typemask`
   * (VMEM_ALLOC, VMEM_FREE, VMEM_SPAN): spans in the order added or
   * imported, each followed by its segments in address order, allocated
   * ones with their rounded size. The tags are read before the first call,
   * so `fn` may use the arena.
   */
  walk(
    typemask: number,
    fn: (start: number, size: number, type: "alloc" | "free" | "span") => void,
  ): void {
    this.live();
    checkInteger("typemask", typemask, 0, 0xffffffff);
    if (typeof fn !== "function") {
      throw new KernelError("EINVAL", `walk callback must be a function, got ${describe(fn)}`);
    }
    const seen: number[] = [];
    const types: ("alloc" | "free" | "span")[] = [];
    const L = this.lk, S = this.ss, T = this.ty;
    for (let bt = L[4 * ANCHOR]!; bt !== ANCHOR; bt = L[4 * bt]!) {
      const t = T[bt]!;
      const busy = t === BT_BUSY || t === BT_CACHED;
      const name = busy ? "alloc" : t === BT_FREE ? "free" : "span";
      const bit = busy ? VMEM_ALLOC : t === BT_FREE ? VMEM_FREE : VMEM_SPAN;
      if ((typemask & bit) === 0) continue;
      seen.push(S[2 * bt]!, S[2 * bt + 1]!);
      types.push(name);
    }
    for (let i = 0; i < types.length; i++) fn(seen[2 * i]!, seen[2 * i + 1]!, types[i]!);
  }

  /**
   * `vmem_destroy`: first gives back everything the quantum caches hold (as
   * `qc_destroy` does), then refuses (EBUSY) while anything is still
   * allocated or an arena imports from this one, the caches left empty and
   * working. Imported spans still held are not given back. Returns the
   * bytes still allocated: always 0.
   */
  destroy(): number {
    this.enter();
    for (const z of this.zones) z.purge(null);
    if (this.nbusy !== 0) {
      throw new KernelError(
        "EBUSY",
        `arena '${this.name}' has ${this.nbusy} live allocation(s) (${describe(this.inuse)} bytes)`,
      );
    }
    for (const a of this.importers) {
      if (a.importSrc === this) {
        throw new KernelError("EBUSY", `arena '${a.name}' imports from '${this.name}'`);
      }
    }
    for (const a of this.importers) a.lastSource = null;
    this.importers.clear();
    const oldSrc = this.importSrc, oldLast = this.lastSource;
    this.importSrc = null;
    this.lastSource = null;
    this.unlink(oldSrc);
    this.unlink(oldLast);
    this.dead = true;
    this.cv.broadcast();
    return 0;
  }

  /** True once {@link destroy} has run. */
  get destroyed(): boolean {
    return this.dead;
  }

  /**
   * `qc_drain`: each quantum cache gives the items of the buckets on its
   * list back to the arena (UMA's `zone_drain`); the CPU's buckets keep
   * theirs. A request that finds no room does the same before it fails.
   */
  drain(): void {
    this.enter();
    for (const z of this.zones) z.drain(null);
  }

  /**
   * Gives back everything the quantum caches hold, the CPU's buckets too
   * (UMA's `cache_drain`, which `destroy` runs first). The caches keep
   * working.
   */
  purge(): void {
    this.enter();
    for (const z of this.zones) z.purge(null);
  }

  /** The counters and contents of each quantum cache, smallest size first. */
  qcacheStats(): FreeBSDQcacheStats[] {
    this.live();
    return this.zones.map((z) => z.stats());
  }

  /** Wakes every request waiting on this arena (FreeBSD's periodic broadcast). */
  wakeup(): void {
    this.cv.broadcast();
  }

  /** Bytes in imported spans. */
  get imported(): number {
    return this.importedBytes;
  }

  /**
   * Verifies every invariant (see the module text). Throws
   * KernelError("CORRUPT") naming the first violation.
   */
  check(): void {
    if (this.dead) return;
    const bad = (what: string): never => {
      throw new KernelError("CORRUPT", `arena '${this.name}': ${what}`);
    };
    const q = this.quantum;
    const S = this.ss, L = this.lk, T = this.ty;
    const seen = new Uint8Array(this.cap);
    const spans: number[] = [];
    let total = 0, inuse = 0, nbusy = 0, nfree = 0, nimported = 0, importedBytes = 0, ncached = 0;
    let span = NIL, cursor = 0, prevType = 0, n = 0;
    for (let bt = L[4 * ANCHOR]!, p = ANCHOR; bt !== ANCHOR; p = bt, bt = L[4 * bt]!) {
      if (++n > this.cap) bad("segment list loops");
      if (bt < FIRST_TAG || bt >= this.cap) bad(`tag #${bt} on the segment list`);
      if (L[4 * bt + 1] !== p) bad(`segment list back link of #${bt}`);
      if (seen[bt]) bad(`#${bt} twice on the segment list`);
      seen[bt] = 1;
      const t = T[bt]!, st = S[2 * bt]!, sz = S[2 * bt + 1]!;
      if (!(sz > 0) || st % q !== 0 || sz % q !== 0 || st + sz > MAX_ADDR) {
        bad(`tag #${bt} [${st}, +${sz}) misaligned, empty or past 2^53`);
      }
      if (t === BT_SPAN || t === BT_SPAN_STATIC) {
        if (span !== NIL && cursor !== S[2 * span]! + S[2 * span + 1]!) {
          bad(`span at ${S[2 * span]} not tiled: segments end at ${cursor}`);
        }
        span = bt;
        cursor = st;
        spans.push(st, sz);
        total += sz;
        if (t === BT_SPAN) {
          nimported++;
          importedBytes += sz;
        }
        prevType = t;
        continue;
      }
      if (span === NIL) bad(`segment #${bt} before any span`);
      if (st !== cursor) bad(`segment #${bt} starts at ${st}, expected ${cursor}`);
      cursor = st + sz;
      if (cursor > S[2 * span]! + S[2 * span + 1]!) bad(`segment #${bt} runs past its span`);
      if (t === BT_FREE) {
        nfree++;
        if (prevType === BT_FREE) bad(`adjacent free segments at ${st}`);
      } else if (t === BT_BUSY || t === BT_CACHED) {
        nbusy++;
        inuse += sz;
        if (t === BT_CACHED) ncached++;
      } else {
        bad(`#${bt} has type ${t}`);
      }
      prevType = t;
    }
    if (span !== NIL && cursor !== S[2 * span]! + S[2 * span + 1]!) {
      bad(`span at ${S[2 * span]} not tiled: segments end at ${cursor}`);
    }
    const order2: number[] = [];
    for (let i = 0; i < spans.length; i += 2) order2.push(i);
    order2.sort((a, b) => spans[a]! - spans[b]!);
    for (let k = 1; k < order2.length; k++) {
      const a = order2[k - 1]!, b = order2[k]!;
      if (spans[b]! < spans[a]! + spans[a + 1]!) {
        bad(`spans at ${spans[a]} and ${spans[b]} overlap`);
      }
    }
    // Free lists and bitmap.
    let listed = 0;
    for (let i = 0; i < NLISTS; i++) {
      let p = i, steps = 0;
      for (let bt = L[4 * i + 2]!; bt !== NIL; p = bt, bt = L[4 * bt + 2]!) {
        if (++steps > this.cap) bad(`free list ${i} loops`);
        if (bt < FIRST_TAG || !seen[bt] || T[bt] !== BT_FREE) bad(`#${bt} on free list ${i}`);
        if (L[4 * bt + 3] !== p) bad(`free list ${i} back link of #${bt}`);
        if (order(S[2 * bt + 1]! / q) !== i) bad(`free segment of ${S[2 * bt + 1]} on list ${i}`);
        listed++;
      }
      if ((L[4 * i + 2] !== NIL) !== this.listBit(i)) bad(`bitmap bit ${i} is wrong`);
    }
    if (listed !== nfree) bad(`${nfree} free segments, ${listed} on the free lists`);
    // Hash.
    let hashed = 0;
    for (let h = 0; h <= this.hashMask; h++) {
      for (let bt = this.hash[h]!; bt !== NIL; bt = L[4 * bt + 2]!) {
        if (bt < FIRST_TAG || !seen[bt] || (T[bt] !== BT_BUSY && T[bt] !== BT_CACHED)) {
          bad(`#${bt} in the hash`);
        }
        if (this.hashIndex(S[2 * bt]!) !== h) bad(`#${bt} in the wrong hash bucket`);
        if (++hashed > nbusy) bad("hash holds more than the allocated segments");
      }
    }
    if (hashed !== nbusy) bad(`${nbusy} allocated segments, ${hashed} hashed`);
    // Pool.
    let pooled = 0;
    for (let bt = this.pool; bt !== NIL; bt = L[4 * bt + 2]!) {
      if (bt < FIRST_TAG || seen[bt]) bad(`pool holds #${bt}`);
      if (++pooled > this.cap) bad("tag pool loops");
    }
    if (pooled !== this.npool) bad(`pool count ${this.npool}, found ${pooled}`);
    if (n + pooled !== this.cap - FIRST_TAG) bad("tags lost from the pool");
    // Counters.
    if (this.vmSize !== total) bad(`size ${this.vmSize}, spans hold ${total}`);
    if (this.inuse !== inuse) bad(`inuse ${this.inuse}, segments hold ${inuse}`);
    if (this.nbusy !== nbusy) bad(`${this.nbusy} busy tags counted, ${nbusy} found`);
    if (this.nimported !== nimported || this.importedBytes !== importedBytes) {
      bad(
        `${this.nimported} imported spans of ${this.importedBytes} counted, found ${nimported} of ${importedBytes}`,
      );
    }
    // Quantum caches: each item is a segment of its cache's size marked
    // cached, held once; every segment so marked is some cache's item.
    const held = new Uint8Array(this.cap);
    let items = 0;
    for (const z of this.zones) {
      z.check();
      z.forEachItem((bt) => {
        if (!(bt >= FIRST_TAG && bt < this.cap && seen[bt] && T[bt] === BT_CACHED)) {
          bad(`quantum cache '${z.name}' holds #${bt}, not a cached segment`);
        }
        if (S[2 * bt + 1] !== z.size) {
          bad(`quantum cache '${z.name}' holds a segment of ${S[2 * bt + 1]} at ${S[2 * bt]}`);
        }
        if (held[bt]) bad(`segment at ${S[2 * bt]} held twice by the quantum caches`);
        held[bt] = 1;
        items++;
      });
    }
    if (items !== ncached) bad(`${ncached} segments marked cached, the caches hold ${items}`);
  }

  // ---- Internals: argument checks and refusals ----

  /** Refuses calls on a destroyed arena. */
  private live(): void {
    if (this.dead) throw new KernelError("EINVAL", `arena '${this.name}' is destroyed`);
  }

  /** Before a change made through the public API: refuses a dead arena, notes a journal conflict. */
  private enter(): void {
    this.live();
    if (this.jr !== null) this.jr.conflict = true;
  }

  /**
   * A checked request: refuses what FreeBSD panics on, then runs it,
   * journaled when it may sleep. An `alloc` of a cached size asks its
   * quantum cache first. `resumed` says it comes back from a wait: it then
   * searches the segments as best-fit (FreeBSD waits inside `vmem_xalloc`'s
   * loop, past the cache). The address is left in `out`.
   */
  private request(
    constrained: boolean,
    size: number,
    align: number,
    phase: number,
    nocross: number,
    minaddr: number,
    maxaddr: number,
    flags: number,
    resumed: boolean,
  ): void {
    if (this.dead || this.jr !== null) this.enter();
    if (typeof size !== "number" || !(size >= 1 && size <= MAX_ADDR && Math.floor(size) === size)) {
      throw new KernelError(
        "EINVAL",
        `size must be an integer in [1, 2^53 - 1], got ${describe(size)}`,
      );
    }
    if (
      typeof flags !== "number" || (flags | 0) !== flags || (flags & ~ALLOC_FLAGS) !== 0 ||
      (flags & FITMASK) === FITMASK || (flags & (M_NOWAIT | M_WAITOK)) === (M_NOWAIT | M_WAITOK)
    ) {
      badFlags(flags);
    }
    const q = this.quantum;
    let a = q, max = Infinity;
    if (constrained) {
      if (
        !(isAddr(align) && isAddr(phase) && isAddr(nocross) && isAddr(minaddr) && isAddr(maxaddr))
      ) {
        checkInteger("align", align);
        checkInteger("phase", phase);
        checkInteger("nocross", nocross);
        checkInteger("minaddr", minaddr);
        checkInteger("maxaddr", maxaddr);
      }
      const rsize = Math.ceil(size * this.invQuantum) * q;
      // What FreeBSD asserts, with 32-bit operations when every value fits.
      if (
        align > 0x40000000 || phase > 0x40000000 || nocross > 0x40000000 || q > 0x40000000 ||
        rsize > 0x40000000 || ((align | phase | nocross) & (q - 1)) !== 0 ||
        (align & (align - 1)) !== 0 || (nocross & (nocross - 1)) !== 0 ||
        (align === 0 ? phase !== 0 : phase >= align) ||
        (nocross !== 0 && (nocross < rsize || ((phase ^ (phase + rsize - 1)) & -nocross) !== 0)) ||
        (maxaddr !== 0 && minaddr >= maxaddr)
      ) {
        checkXalloc(size, rsize, align, phase, nocross, minaddr, maxaddr, q);
      }
      if (align !== 0) a = align;
      if (maxaddr !== 0) max = maxaddr - 1;
    }
    const strat = resumed ? 0 : flags & M_FIRSTFIT;
    const z = !constrained && !resumed && size <= this.qcacheMax
      ? this.zones[((size - 1) * this.invQuantum) | 0]!
      : null;
    const traced = !constrained && this.tracer !== null;
    let cached = false, retries = 0;
    if (flags & M_NOWAIT) {
      // What a traced request did is told once its outcome is known.
      const outer = this.deferred;
      if (traced) this.deferred = [];
      let done = false;
      try {
        cached = z !== null && this.zoneAlloc(z, flags, null);
        if (!cached) {
          retries = this.retries;
          this.xallocCore(size, a, phase, nocross, minaddr, max, flags, strat, null);
        }
        done = true;
      } finally {
        if (traced) {
          const events = this.deferred as TraceEvent[];
          this.deferred = outer;
          const addr = this.out[0]!;
          if (done && !cached) {
            const fit = strat !== 0 && this.retries === retries ? M_FIRSTFIT : M_BESTFIT;
            const e = { vm: this, free: false, addr, size, flags: M_NOWAIT | fit };
            // A failure goes before the frees of a drain on the way: after
            // them, a replay would find the room that FreeBSD does not
            // search for again when the drain gave spans back.
            if (addr < 0) events.unshift(e);
            else events.push(e);
          }
          VmemFreeBSD.tell(events);
          this.out[0] = addr;
        }
      }
      return;
    }
    const jr = this.ownJournal.active ? new Journal() : this.ownJournal;
    jr.begin();
    try {
      cached = z !== null && this.zoneAlloc(z, flags, jr);
      if (!cached) {
        retries = this.retries;
        this.xallocCore(size, a, phase, nocross, minaddr, max, flags, strat, jr);
      }
    } catch (e) {
      // Undone unless something other than the request changed its arenas.
      VmemFreeBSD.endJournal(jr, !jr.conflict);
      throw e;
    }
    const addr = this.out[0]!;
    VmemFreeBSD.endJournal(jr, false); // may tell tracers, who may use the arena
    if (traced && !cached) {
      this.traceAlloc(size, strat !== 0 && this.retries === retries ? M_FIRSTFIT : M_BESTFIT, addr);
    }
    this.out[0] = addr;
  }

  /** Retries a sleeping request until it succeeds, waking on frees and wakeups. */
  private async waitLoop(
    constrained: boolean,
    size: number,
    align: number,
    phase: number,
    nocross: number,
    minaddr: number,
    maxaddr: number,
    flags: number,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    for (let resumed = false;; resumed = true) {
      if (signal?.aborted) throw cancelled(this);
      let blocked: VmemFreeBSD;
      try {
        this.request(constrained, size, align, phase, nocross, minaddr, maxaddr, flags, resumed);
        return this.out[0]!;
      } catch (e) {
        if (!(e instanceof WouldBlock)) throw e;
        blocked = e.arena;
      }
      if (blocked.dead) throw new KernelError("EINVAL", `arena '${blocked.name}' was destroyed`);
      await blocked.cv.wait(signal, () => cancelled(this));
    }
  }

  // ---- Internals: FreeBSD's allocation path ----

  /**
   * `vmem_alloc` after the checks, as an import calls it (through the
   * quantum caches): the address (-1: none) is left in `out`.
   */
  private allocCore(size: number, flags: number, jr: Journal | null): void {
    if (
      size <= this.qcacheMax &&
      this.zoneAlloc(this.zones[((size - 1) * this.invQuantum) | 0]!, flags, jr)
    ) {
      return;
    }
    this.xallocCore(size, this.quantum, 0, 0, 0, Infinity, flags, flags & M_FIRSTFIT, jr);
  }

  /**
   * `uma_zalloc` of zone `z` as `vmem_alloc` calls it, never sleeping. True
   * when it gave an item, whose address is left in `out`.
   */
  private zoneAlloc(z: QcacheZone<Journal | null>, flags: number, jr: Journal | null): boolean {
    const bt = z.alloc((flags & ~M_WAITOK) | M_NOWAIT, jr);
    if (bt < 0) return false;
    this.ty[bt] = BT_BUSY;
    this.out[0] = this.ss[2 * bt]!;
    return true;
  }

  /**
   * `uma_zfree` of what `vmem_free` hands a cache, once the segment hash
   * says `addr` is an allocated segment of the cache's size not already in
   * a cache (arguments checked by the caller).
   */
  private cacheFree(addr: number, size: number): void {
    if (this.jr !== null || this.dead) this.enter();
    this.cacheFreeCore(addr, size);
  }

  /** {@link cacheFree} past the test for a running request (part of which it may be). */
  private cacheFreeCore(addr: number, size: number): void {
    const z = this.zones[((size - 1) * this.invQuantum) | 0]!;
    const bt = this.busyTag(addr);
    if (bt === NIL || this.ty[bt] !== BT_BUSY || this.ss[2 * bt + 1] !== z.size) {
      this.out[0] = addr;
      this.badFree(bt, size);
    }
    this.ty[bt] = BT_CACHED;
    // uma_zfree's first step, the push onto the alloc bucket, written out.
    const n = z.allocCount;
    if (n < z.allocBucket.length) {
      z.allocBucket[n] = bt;
      z.allocCount = n + 1;
      z.nFree++;
    } else {
      z.free(bt);
    }
  }

  /** The allocated (or cached) segment starting at `addr`, or NIL. */
  private busyTag(addr: number): number {
    let bt = this.hash[this.hashIndex(addr)]!;
    while (bt !== NIL && this.ss[2 * bt] !== addr) bt = this.lk[4 * bt + 2]!;
    return bt;
  }

  /**
   * `qc_import` for zone `z`: up to `count` items, each an `xalloc` of the
   * zone's size from VMEM_ADDR_QCACHE_MIN on, marked cached as it goes into
   * `store`. Returns how many.
   */
  private importItems(
    z: QcacheZone<Journal | null>,
    store: Int32Array,
    count: number,
    flags: number,
    jr: Journal | null,
  ): number {
    const min = VMEM_ADDR_QCACHE_MIN;
    for (let i = 0; i < count; i++) {
      const retries = this.retries;
      this.xallocCore(z.size, this.quantum, 0, 0, min, Infinity, flags, flags & M_FIRSTFIT, jr);
      const addr = this.out[0]!;
      if (addr < 0) return i;
      const bt = this.busyTag(addr);
      this.ty[bt] = BT_CACHED;
      store[i] = bt;
      if (this.tracer !== null) {
        const fit = (flags & M_FIRSTFIT) !== 0 && this.retries === retries;
        this.traceAlloc(z.size, fit ? M_FIRSTFIT : M_BESTFIT, addr);
      }
    }
    return count;
  }

  /** `qc_release` for zone `z`: an `xfree` of each item of `store[0..count)`. */
  private releaseItems(
    z: QcacheZone<Journal | null>,
    store: Int32Array,
    count: number,
    jr: Journal | null,
  ): void {
    for (let i = 0; i < count; i++) {
      const bt = store[i]!;
      const addr = this.ss[2 * bt]!;
      this.ty[bt] = BT_BUSY;
      this.out[0] = addr;
      this.xfreeCore(z.size, jr);
      if (this.tracer !== null) this.traceFree(addr, z.size);
    }
  }

  /**
   * Tells the tracer of an allocation: at once, or when the running nosleep
   * request has its outcome, or when the journal it is under is kept.
   */
  private traceAlloc(size: number, fit: number, addr: number): void {
    const e = { vm: this, free: false, addr, size, flags: M_NOWAIT | fit };
    if (this.deferred !== null) this.deferred.push(e);
    else if (this.jr !== null) this.jr.events.push(e);
    else this.tracer?.alloc(size, M_NOWAIT | fit, addr);
  }

  /** Tells the tracer of a free, as {@link traceAlloc}. */
  private traceFree(addr: number, size: number): void {
    const e = { vm: this, free: true, addr, size, flags: 0 };
    if (this.deferred !== null) this.deferred.push(e);
    else if (this.jr !== null) this.jr.events.push(e);
    else this.tracer?.free(addr, size);
  }

  /** Tells each event's arena's tracer (or what holds its events now). */
  private static tell(events: readonly TraceEvent[]): void {
    for (const e of events) {
      if (e.free) e.vm.traceFree(e.addr, e.size);
      else e.vm.traceAlloc(e.size, e.flags & FITMASK, e.addr);
    }
  }

  /**
   * The search of a nosleep request without constraints, written out in one
   * piece: the first segment large enough is carved at its start (FreeBSD's
   * `vmem_clip` without a left remainder). When the search fails, the
   * request goes FreeBSD's whole way (xallocCore, whose first search fails
   * the same way and changes nothing).
   */
  private allocPlain(size0: number, flags: number): void {
    const q = this.quantum;
    const size = roundup2(size0, q, this.invQuantum);
    const qsize = size * this.invQuantum;
    const strat = flags & M_FIRSTFIT;
    let first = order(qsize);
    if (strat !== 0 && qsize > 32 && !isPow2(qsize)) first++;
    if (this.npool >= BT_MAXALLOC) {
      const S = this.ss, L = this.lk;
      for (let l = this.nextList(first); l < NLISTS; l = this.nextList(l + 1)) {
        for (let bt = L[4 * l + 2]!; bt !== NIL; bt = L[4 * bt + 2]!) {
          const bsize = S[2 * bt + 1]!;
          if (bsize >= size) {
            const bs = S[2 * bt]!;
            let busy = bt;
            if (bsize === size) {
              this.remfree(bt);
            } else {
              const rest = bsize - size;
              S[2 * bt] = bs + size;
              S[2 * bt + 1] = rest;
              // Out of the list and back at its head; a head that stays on
              // its list is there already.
              if (L[4 * bt + 3] !== l || order(rest * this.invQuantum) !== l) {
                this.remfree(bt);
                this.insfree(bt);
              }
              busy = this.pool;
              this.pool = L[4 * busy + 2]!;
              this.npool--;
              S[2 * busy] = bs;
              S[2 * busy + 1] = size;
              const prev = L[4 * bt + 1]!;
              L[4 * busy] = bt;
              L[4 * busy + 1] = prev;
              L[4 * prev] = busy;
              L[4 * bt + 1] = busy;
            }
            this.ty[busy] = BT_BUSY;
            const x = bs * this.invQuantum;
            const k = (x >>> 0) ^ Math.imul((x / TWO32) >>> 0, 0x9e3779b1);
            const h = (k ^ (k >>> 15)) & this.hashMask;
            L[4 * busy + 2] = this.hash[h]!;
            this.hash[h] = busy;
            this.inuse += size;
            if (++this.nbusy > 2 * (this.hashMask + 1)) this.rehash(4 * (this.hashMask + 1));
            this.out[0] = bs;
            return;
          }
          if (strat !== 0) break;
        }
      }
    }
    this.xallocCore(size0, q, 0, 0, 0, Infinity, flags, strat, null);
  }

  /**
   * `vmem_xalloc` after the checks: `align` defaulted, `maxaddr` inclusive
   * (Infinity: none), `strat` M_FIRSTFIT or 0 (best-fit). The address (-1:
   * none) is left in `out`; a request that would wait throws WouldBlock.
   * `vmem_fit` is written out in the search: the lowest address of the
   * segment at or above `minaddr`, at `phase` from an `align` boundary,
   * moved to the next `nocross` boundary (plus phase) if it would cross one,
   * whose last unit is within the segment and at or below `maxaddr`.
   */
  private xallocCore(
    size0: number,
    align: number,
    phase: number,
    nocross: number,
    minaddr: number,
    maxaddr: number,
    flags: number,
    strat: number,
    jr: Journal | null,
  ): void {
    const q = this.quantum;
    const size = Math.ceil(size0 * this.invQuantum) * q;
    const qsize = size * this.invQuantum;
    let first = order(qsize);
    // First-fit starts a list higher unless the size is its list's smallest
    // (every size up to 32 quanta is; above, only powers of two are).
    if (strat !== 0 && qsize > 32 && !isPow2(qsize)) first++;
    // Numbers by type: bounds merged with untyped parameters would box.
    const lo = +minaddr, hi = +maxaddr, al = +align, ph = +phase, nc = +nocross;
    const plain = al === q && nc === 0 && lo === 0 && hi === Infinity;
    // Exact reciprocals of powers of two: rounding by them multiplies.
    const ial = 1 / al, inc = nc === 0 ? 0 : 1 / nc;
    for (;;) {
      if (this.npool < BT_MAXALLOC) this.grow(2 * this.cap);
      const S = this.ss, L = this.lk;
      for (let l = this.nextList(first); l < NLISTS; l = this.nextList(l + 1)) {
        for (let bt = L[4 * l + 2]!; bt !== NIL; bt = L[4 * bt + 2]!) {
          const bs = S[2 * bt]!, bsize = S[2 * bt + 1]!;
          if (bsize >= size) {
            if (plain) {
              this.out[0] = bs;
              this.clip(bt, size);
              return;
            }
            let start = bs < lo ? lo : bs;
            let end = bs + bsize - 1;
            if (end > hi) end = hi;
            if (start <= end) {
              // Below phase FreeBSD's unsigned arithmetic aligns to phase itself; so does ceil.
              start = Math.ceil((start - ph) * ial) * al + ph;
              if (nc !== 0 && Math.floor(start * inc) !== Math.floor((start + size - 1) * inc)) {
                start = Math.ceil((start - ph) * inc) * nc + ph;
              }
              if (start <= end && end - start >= size - 1) {
                this.out[0] = start;
                this.clip(bt, size);
                return;
              }
            }
          }
          if (strat !== 0) break;
        }
      }
      if (strat !== 0) {
        strat = 0;
        first = order(qsize);
        continue;
      }
      if (this.importSpan(size, align, flags, jr)) continue;
      if (this.qcacheMax !== 0 || this.reclaimFn !== null) {
        const avail = this.vmSize - this.inuse;
        if (this.qcacheMax !== 0) this.drainZones(jr);
        if (this.reclaimFn !== null) {
          this.reclaimFn(this, flags);
          if (this.dead) throw new KernelError("EINVAL", `arena '${this.name}' was destroyed`);
        }
        if (this.vmSize - this.inuse > avail) {
          this.retries++;
          continue;
        }
      }
      if (flags & M_NOWAIT) {
        this.out[0] = -1;
        return;
      }
      throw new WouldBlock(this);
    }
  }

  /**
   * `vmem_free` after the checks, as a release into this source runs it
   * (through the quantum caches); `jr` as {@link xfreeCore}'s.
   */
  private freeCore(addr: number, size: number, jr: Journal | null): void {
    if (size <= this.qcacheMax && addr >= VMEM_ADDR_QCACHE_MIN) {
      this.cacheFreeCore(addr, size);
      return;
    }
    this.out[0] = addr;
    this.xfreeCore(size, jr);
  }

  /** `qc_drain` as a request that found no room runs it, journaled with the request. */
  private drainZones(jr: Journal | null): void {
    if (!this.zones.some((z) => z.drainable)) return;
    VmemFreeBSD.touch(jr, this);
    for (const z of this.zones) z.drain(jr);
  }

  /**
   * `vmem_clip`: makes `[start, start + size)` of free tag `bt` an
   * allocated segment, `start` read from `out` (and left there).
   */
  private clip(bt: number, size: number): void {
    const S = this.ss, L = this.lk, T = this.ty;
    const start = this.out[0]!;
    this.remfree(bt);
    const bs = S[2 * bt]!;
    if (bs !== start) {
      const prev = this.takeTag();
      T[prev] = BT_FREE;
      S[2 * prev] = bs;
      S[2 * prev + 1] = start - bs;
      S[2 * bt] = start;
      S[2 * bt + 1] = S[2 * bt + 1]! - (start - bs);
      this.insfree(prev);
      this.insseg(prev, L[4 * bt + 1]!);
    }
    let busy = bt;
    if (S[2 * bt + 1] !== size) {
      busy = this.takeTag();
      S[2 * busy] = start;
      S[2 * busy + 1] = size;
      S[2 * bt] = start + size;
      S[2 * bt + 1] = S[2 * bt + 1]! - size;
      this.insfree(bt);
      this.insseg(busy, L[4 * bt + 1]!);
    }
    T[busy] = BT_BUSY;
    // bt_insbusy, with hashIndex written out.
    const x = start * this.invQuantum;
    const k = (x >>> 0) ^ Math.imul((x / TWO32) >>> 0, 0x9e3779b1);
    const h = (k ^ (k >>> 15)) & this.hashMask;
    L[4 * busy + 2] = this.hash[h]!;
    this.hash[h] = busy;
    this.inuse += size;
    if (++this.nbusy > 2 * (this.hashMask + 1)) this.rehash(4 * (this.hashMask + 1));
  }

  /**
   * `vmem_import`: a span of `size` (plus twice the alignment when that is
   * not the quantum), rounded up to the import quantum, unless the limit
   * forbids it. True when a span was added.
   */
  private importSpan(size: number, align: number, flags: number, jr: Journal | null): boolean {
    const src = this.importSrc;
    if (src === null) return false;
    let isize = align !== this.quantum ? align * 2 + size : size;
    isize = roundupAny(isize, this.importQuantum);
    if (this.limit !== 0 && this.limit < this.vmSize + isize) return false;
    if (jr !== null) VmemFreeBSD.touch(jr, this);
    let addr: number;
    const fn = this.importFn;
    if (fn === null) {
      VmemFreeBSD.touch(jr, src);
      src.allocCore(isize, flags, jr);
      addr = src.out[0]!;
    } else {
      addr = fn(src, isize, flags);
      if (addr === -1) return false;
      if (
        typeof addr !== "number" || !Number.isInteger(addr) || addr < 0 ||
        addr % this.quantum !== 0 || addr + isize > MAX_ADDR
      ) {
        throw new KernelError(
          "EINVAL",
          `import into arena '${this.name}' returned ${
            describe(addr)
          } for ${isize}: not a quantum-aligned span`,
        );
      }
      if (jr !== null) {
        // Undone through the release function; without one it cannot be undone.
        if (this.releaseFn === null) jr.conflict = true;
        else jr.imports.push({ release: this.releaseFn, source: src, addr, size: isize });
      }
    }
    if (addr < 0) return false;
    if (this.npool < BT_MAXALLOC) this.grow(2 * this.cap);
    this.add1(addr, isize, BT_SPAN);
    return true;
  }

  /** `vmem_add1`: a span tag at the tail of the segment list and one free segment over it. */
  private add1(addr: number, size: number, type: number): void {
    const S = this.ss;
    const span = this.takeTag();
    this.ty[span] = type;
    S[2 * span] = addr;
    S[2 * span + 1] = size;
    this.insseg(span, this.lk[4 * ANCHOR + 1]!);
    const free = this.takeTag();
    this.ty[free] = BT_FREE;
    S[2 * free] = addr;
    S[2 * free + 1] = size;
    this.insseg(free, span);
    this.insfree(free);
    this.vmSize += size;
    if (type === BT_SPAN) {
      this.nimported++;
      this.importedBytes += size;
    }
  }

  /**
   * `vmem_xfree` after the argument types are checked: refuses a bad
   * address or size, then coalesces with the next and the previous free
   * segment and gives a wholly free imported span back to the source. `jr`
   * is the sleeping request the free is part of (a drain's), if any.
   */
  private xfreeCore(size: number, jr: Journal | null): void {
    const addr = this.out[0]!;
    const S = this.ss, L = this.lk, T = this.ty, H = this.hash;
    const x = addr * this.invQuantum;
    const k = (x >>> 0) ^ Math.imul((x / TWO32) >>> 0, 0x9e3779b1);
    const h = (k ^ (k >>> 15)) & this.hashMask;
    let hprev = NIL;
    let bt = H[h]!;
    while (bt !== NIL && S[2 * bt] !== addr) {
      hprev = bt;
      bt = L[4 * bt + 2]!;
    }
    const bsize = bt === NIL ? 0 : S[2 * bt + 1]!;
    if (
      bt === NIL || T[bt] !== BT_BUSY || roundup2(size, this.quantum, this.invQuantum) !== bsize
    ) {
      this.badFree(bt, size);
    }
    // bt_rembusy.
    if (hprev === NIL) H[h] = L[4 * bt + 2]!;
    else L[4 * hprev + 2] = L[4 * bt + 2]!;
    this.inuse -= bsize;
    if (--this.nbusy < (this.hashMask + 1) >>> 3 && this.hashMask >= HASH_MIN) {
      this.rehash((this.hashMask + 1) >>> 1);
    }
    let start = addr, len = bsize;
    const next = L[4 * bt]!;
    if (T[next] === BT_FREE) {
      len += S[2 * next + 1]!;
      this.remfree(next);
      this.remseg(next);
    }
    const prev = L[4 * bt + 1]!;
    if (T[prev] === BT_FREE) {
      len += S[2 * prev + 1]!;
      start = S[2 * prev]!;
      this.remfree(prev);
      this.remseg(prev);
    }
    S[2 * bt] = start;
    S[2 * bt + 1] = len;
    T[bt] = BT_FREE;
    const before = L[4 * bt + 1]!;
    const release = this.releaseFn;
    if (release !== null && T[before] === BT_SPAN && S[2 * before + 1] === len) {
      this.remseg(bt);
      this.remseg(before);
      this.vmSize -= len;
      this.nimported--;
      this.importedBytes -= len;
      this.cv.broadcast();
      const src = this.importSrc as VmemFreeBSD;
      if (release === defaultRelease) {
        VmemFreeBSD.touch(jr, src);
        src.freeCore(start, len, jr);
      } else {
        // What a custom function does cannot be undone: a request keeps it.
        if (jr !== null) jr.conflict = true;
        release(src, start, len);
      }
      return;
    }
    // bt_insfree, written out.
    const i = order(len * this.invQuantum);
    const n = L[4 * i + 2]!;
    L[4 * bt + 2] = n;
    L[4 * bt + 3] = i;
    if (n !== NIL) L[4 * n + 3] = bt;
    L[4 * i + 2] = bt;
    if (i < 32) this.fm0 |= 1 << i;
    else if (i < 64) this.fm1 |= 1 << (i - 32);
    else this.fm2 |= 1 << (i - 64);
    this.cv.broadcast();
  }

  /**
   * Refuses a free (of the address in `out`) that is not allocated, already
   * in a quantum cache, or of a size that rounds differently.
   */
  private badFree(bt: number, size: number): never {
    const addr = this.out[0]!;
    if (bt === NIL) {
      throw new KernelError(
        "BADFREE",
        `free of ${describe(addr)} to arena '${this.name}': not allocated`,
      );
    }
    if (this.ty[bt] === BT_CACHED) {
      const z = this.zones[this.ss[2 * bt + 1]! * this.invQuantum - 1]!;
      throw new KernelError(
        "BADFREE",
        `free of ${
          describe(addr)
        } to arena '${this.name}': already free, in quantum cache '${z.name}'`,
      );
    }
    throw new KernelError(
      "BADFREE",
      `free of ${describe(addr)} to arena '${this.name}': size ${
        describe(size)
      } does not round up to the segment's ${describe(this.ss[2 * bt + 1])}`,
    );
  }

  // ---- Internals: lists, tags, hash ----

  /** `bt_insfree`: at the head of the list of its size; marks the list non-empty. */
  private insfree(bt: number): void {
    const L = this.lk;
    const i = order(this.ss[2 * bt + 1]! * this.invQuantum);
    const n = L[4 * i + 2]!;
    L[4 * bt + 2] = n;
    L[4 * bt + 3] = i;
    if (n !== NIL) L[4 * n + 3] = bt;
    L[4 * i + 2] = bt;
    if (i < 32) this.fm0 |= 1 << i;
    else if (i < 64) this.fm1 |= 1 << (i - 32);
    else this.fm2 |= 1 << (i - 64);
  }

  /** `bt_remfree`: unlinks a free tag; marks its list empty if it was the last. */
  private remfree(bt: number): void {
    const L = this.lk;
    const p = L[4 * bt + 3]!, n = L[4 * bt + 2]!;
    L[4 * p + 2] = n;
    if (n !== NIL) L[4 * n + 3] = p;
    else if (p < NLISTS) {
      if (p < 32) this.fm0 &= ~(1 << p);
      else if (p < 64) this.fm1 &= ~(1 << (p - 32));
      else this.fm2 &= ~(1 << (p - 64));
    }
  }

  /** The first non-empty free list at or above `i`, or NLISTS. */
  private nextList(i: number): number {
    if (i < 32) {
      const m = this.fm0 & (-1 << i);
      if (m !== 0) return 31 - Math.clz32(m & -m);
      i = 32;
    }
    if (i < 64) {
      const m = this.fm1 & (-1 << (i - 32));
      if (m !== 0) return 63 - Math.clz32(m & -m);
      i = 64;
    }
    if (i < NLISTS) {
      const m = this.fm2 & (-1 << (i - 64));
      if (m !== 0) return 95 - Math.clz32(m & -m);
    }
    return NLISTS;
  }

  /** The highest non-empty free list, or -1. */
  private highestList(): number {
    if (this.fm2 !== 0) return 95 - Math.clz32(this.fm2);
    if (this.fm1 !== 0) return 63 - Math.clz32(this.fm1);
    if (this.fm0 !== 0) return 31 - Math.clz32(this.fm0);
    return -1;
  }

  /** True when free list `i` is marked non-empty. */
  private listBit(i: number): boolean {
    const w = i < 32 ? this.fm0 : i < 64 ? this.fm1 : this.fm2;
    return (w & (1 << (i & 31))) !== 0;
  }

  /** Links tag `bt` into the segment list after `prev`. */
  private insseg(bt: number, prev: number): void {
    const L = this.lk;
    const n = L[4 * prev]!;
    L[4 * bt] = n;
    L[4 * bt + 1] = prev;
    L[4 * prev] = bt;
    L[4 * n + 1] = bt;
  }

  /** `bt_remseg`: unlinks tag `bt` from the segment list and returns it to the pool. */
  private remseg(bt: number): void {
    const L = this.lk;
    const p = L[4 * bt + 1]!, n = L[4 * bt]!;
    L[4 * p] = n;
    L[4 * n + 1] = p;
    this.ty[bt] = 0;
    L[4 * bt + 2] = this.pool;
    this.pool = bt;
    this.npool++;
  }

  /** `bt_alloc`: a tag from the pool (topped up before each step). */
  private takeTag(): number {
    const bt = this.pool;
    if (bt === NIL) throw new KernelError("CORRUPT", `arena '${this.name}': tag pool exhausted`);
    this.pool = this.lk[4 * bt + 2]!;
    this.npool--;
    return bt;
  }

  /** Grows the tag arrays to `cap` tags. */
  private grow(cap: number): void {
    const old = this.cap;
    const ss = new Float64Array(2 * cap);
    ss.set(this.ss);
    const lk = new Int32Array(4 * cap);
    lk.set(this.lk);
    const ty = new Uint8Array(cap);
    ty.set(this.ty);
    this.ss = ss;
    this.lk = lk;
    this.ty = ty;
    this.cap = cap;
    for (let bt = cap - 1; bt >= Math.max(old, FIRST_TAG); bt--) {
      lk[4 * bt + 2] = this.pool;
      this.pool = bt;
      this.npool++;
    }
  }

  /** The hash bucket of an allocated segment starting at `addr`. */
  private hashIndex(addr: number): number {
    const x = addr * this.invQuantum;
    const k = (x >>> 0) ^ Math.imul((x / TWO32) >>> 0, 0x9e3779b1);
    return (k ^ (k >>> 15)) & this.hashMask;
  }

  /** `vmem_rehash`: moves the allocated segments into `size` buckets (a power of two). */
  private rehash(size: number): void {
    const old = this.hash, oldSize = this.hashMask + 1;
    this.hash = new Int32Array(size).fill(NIL);
    this.hashMask = size - 1;
    const L = this.lk;
    for (let h = 0; h < oldSize; h++) {
      let bt = old[h]!;
      while (bt !== NIL) {
        const next = L[4 * bt + 2]!;
        const b = this.hashIndex(this.ss[2 * bt]!);
        L[4 * bt + 2] = this.hash[b]!;
        this.hash[b] = bt;
        bt = next;
      }
    }
  }

  // ---- Internals: the import relation ----

  /**
   * The arenas related to this one by imports, transitively: upward its
   * sources and the sources of spans it still holds, downward the arenas
   * that import from it or hold spans from it.
   */
  private related(up: boolean): VmemFreeBSD[] {
    const out: VmemFreeBSD[] = [];
    const seen = new Set<VmemFreeBSD>([this]);
    for (let i = -1; i < out.length; i++) {
      const c = i < 0 ? this : out[i]!;
      for (const u of up ? [c.importSrc, c.lastSource] : c.importers) {
        if (u !== null && !seen.has(u)) {
          seen.add(u);
          out.push(u);
        }
      }
    }
    return out;
  }

  /** Appends `start, size` of each span (static ones only with `staticOnly`) to `out`. */
  private collectSpans(out: number[], staticOnly: boolean): void {
    const L = this.lk;
    for (let bt = L[4 * ANCHOR]!; bt !== ANCHOR; bt = L[4 * bt]!) {
      const t = this.ty[bt];
      if (t === BT_SPAN_STATIC || (!staticOnly && t === BT_SPAN)) {
        out.push(this.ss[2 * bt]!, this.ss[2 * bt + 1]!);
      }
    }
  }

  /**
   * Refuses (EINVAL) ranges (`start, size` pairs) that overlap a span of
   * this arena or of its sources; unless `upOnly`, also of the arenas that
   * import from it.
   */
  private checkNoOverlap(ranges: readonly number[], upOnly: boolean, what: string): void {
    const arenas = this.related(true);
    arenas.push(this);
    if (!upOnly) arenas.push(...this.related(false));
    const spans: number[] = [];
    for (const a of arenas) a.collectSpans(spans, false);
    for (let i = 0; i < ranges.length; i += 2) {
      const b = ranges[i]!, s = ranges[i + 1]!;
      for (let k = 0; k < spans.length; k += 2) {
        if (b < spans[k]! + spans[k + 1]! && spans[k]! < b + s) {
          throw new KernelError(
            "EINVAL",
            `span [${describe(b)}, +${describe(s)}) overlaps span [${describe(spans[k])}, +${
              describe(spans[k + 1])
            }) of ${what} of '${this.name}'`,
          );
        }
      }
    }
  }

  /** Drops this arena from the importers of `old` unless it is still its source or last source. */
  private unlink(old: VmemFreeBSD | null): void {
    if (old !== null && old !== this.importSrc && old !== this.lastSource) {
      old.importers.delete(this);
    }
  }

  // ---- Internals: whole-arena copies (journal) ----

  /** A copy of everything requests change. */
  private saveState(): ArenaState {
    return {
      ss: this.ss.slice(),
      lk: this.lk.slice(),
      ty: this.ty.slice(),
      hash: this.hash.slice(),
      scalars: [
        this.cap,
        this.pool,
        this.npool,
        this.fm0,
        this.fm1,
        this.fm2,
        this.hashMask,
        this.vmSize,
        this.inuse,
        this.nbusy,
        this.nimported,
        this.importedBytes,
      ],
      zones: this.zones.map((z) => z.saveState()),
    };
  }

  /** Puts back a state saved by saveState. */
  private restoreState(st: ArenaState): void {
    this.ss = st.ss;
    this.lk = st.lk;
    this.ty = st.ty;
    this.hash = st.hash;
    const s = st.scalars;
    this.cap = s[0]!;
    this.pool = s[1]!;
    this.npool = s[2]!;
    this.fm0 = s[3]!;
    this.fm1 = s[4]!;
    this.fm2 = s[5]!;
    this.hashMask = s[6]!;
    this.vmSize = s[7]!;
    this.inuse = s[8]!;
    this.nbusy = s[9]!;
    this.nimported = s[10]!;
    this.importedBytes = s[11]!;
    this.zones.forEach((z, i) => z.restoreState(st.zones[i]!));
  }

  /**
   * Before request `jr` (null: one that is not journaled) changes `vm`:
   * copies `vm` into the journal the first time; a change by anything else
   * to an arena another request journaled makes that one keep what it did.
   */
  private static touch(jr: Journal | null, vm: VmemFreeBSD): void {
    if (vm.jr === jr) return;
    if (vm.jr !== null) vm.jr.conflict = true;
    if (jr === null) return;
    jr.arenas.push(vm);
    jr.prev.push(vm.jr);
    jr.states.push(vm.saveState());
    vm.jr = jr;
  }

  /**
   * Ends a request's journal; `undo` puts every journaled arena back as it
   * was and gives back what custom functions imported, else the tracers are
   * told what the request did.
   */
  private static endJournal(jr: Journal, undo: boolean): void {
    for (let i = jr.arenas.length - 1; i >= 0; i--) {
      const vm = jr.arenas[i]!;
      if (undo) vm.restoreState(jr.states[i]!);
      vm.jr = jr.prev[i]!;
    }
    const imports = undo ? jr.imports.slice() : [];
    const events = undo ? [] : jr.events.slice();
    jr.arenas.length = 0;
    jr.prev.length = 0;
    jr.states.length = 0;
    jr.imports.length = 0;
    jr.events.length = 0;
    jr.active = false;
    for (let i = imports.length - 1; i >= 0; i--) {
      const { release, source, addr, size } = imports[i]!;
      release(source, addr, size);
    }
    VmemFreeBSD.tell(events);
  }
}

// ---- Module functions ----

/**
 * The default release function, `vmem_free` in the source. xfreeCore
 * recognises it and frees in the source directly.
 */
function defaultRelease(source: VmemFreeBSD, addr: number, size: number): void {
  source.free(addr, size);
}

/** Refuses (EINVAL) an xalloc FreeBSD asserts against; the general form of request's test. */
function checkXalloc(
  size: number,
  rsize: number,
  align: number,
  phase: number,
  nocross: number,
  minaddr: number,
  maxaddr: number,
  q: number,
): void {
  const why = align % q !== 0 || phase % q !== 0 || nocross % q !== 0
    ? `align, phase and nocross must be multiples of quantum ${q}`
    : (align !== 0 && !isPow2(align)) || (nocross !== 0 && !isPow2(nocross))
    ? "align and nocross must be 0 or powers of two"
    : (align === 0 ? phase !== 0 : phase >= align)
    ? "phase must be below align (0 when align is 0)"
    : nocross !== 0 &&
        (nocross < rsize ||
          Math.floor(phase / nocross) !== Math.floor((phase + rsize - 1) / nocross))
    ? `the rounded size ${rsize} at phase ${phase} crosses a nocross boundary`
    : maxaddr !== 0 && minaddr >= maxaddr
    ? `minaddr ${describe(minaddr)} is not below maxaddr ${describe(maxaddr)}`
    : null;
  if (why !== null) {
    throw new KernelError(
      "EINVAL",
      `xalloc(size ${size}, align ${align}, phase ${phase}, nocross ${nocross}, minaddr ${minaddr}, maxaddr ${maxaddr}): ${why}`,
    );
  }
}

/** Refuses flags: M_NEXTFIT as UNSUPPORTED, anything else not a valid set as EINVAL. */
function badFlags(flags: unknown): never {
  if (
    typeof flags === "number" && (flags | 0) === flags &&
    (flags & ~(ALLOC_FLAGS | M_NEXTFIT)) === 0 && (flags & M_NEXTFIT) !== 0
  ) {
    throw new KernelError("UNSUPPORTED", `FreeBSD's vmem (this revision) has no M_NEXTFIT`);
  }
  throw new KernelError(
    "EINVAL",
    `allocation flags must be M_NOWAIT or M_WAITOK with at most one of M_BESTFIT, M_FIRSTFIT, got ${
      describe(flags)
    }`,
  );
}

function cancelled(vm: VmemFreeBSD): KernelError {
  return new KernelError("ECANCELED", `wait for arena '${vm.name}' cancelled`);
}
