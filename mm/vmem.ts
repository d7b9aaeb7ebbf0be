/**
 * vmem: the illumos resource-arena allocator, decision for decision.
 *
 * Theory. An arena manages a set of integers (addresses, identifiers) as a
 * list of spans, each cut into segments that are either allocated or free.
 * The arena list holds, per span, a span marker followed by its segments in
 * address order; spans come in the order they were added or imported. Two
 * markers move through that list: the next-fit rotor and walkers (one per
 * walk in progress); neither takes part in coalescing, so a free segment on
 * each side of one stays two segments until the marker moves on.
 *
 * Free segments also sit on power-of-two free lists (list i holds sizes in
 * [2^i, 2^(i+1))), each list LIFO, all lists chained into one long list whose
 * heads act as markers. A bitmap of non-empty lists (the freemap) lets
 * instant-fit take the head of the first list whose members all fit, in
 * constant time. Allocated segments live in a hash table keyed by start
 * address, so a free finds its segment in constant time; the table is resized
 * (`vmem_hash_rescale`) as the number of allocated segments grows and shrinks.
 * An allocated segment keeps the exact size asked for; the slack up to the
 * quantum belongs to no segment and comes back when it is freed.
 *
 * When an arena has a source, it imports spans from it on demand (sized as
 * `vmem_xalloc` does) and gives a span back as soon as it is wholly free. An
 * arena may front its small sizes with quantum caches (see vmem_qcache.ts).
 *
 * Data: every segment (and marker) is an index into a structure of typed
 * arrays: a row of 32 bytes per segment holding its start and end (float64,
 * exact to 2^53) and its four links (int32: arena-list next and prev,
 * kin-list next and prev), and its type and import flag in Uint8Arrays.
 * The kin links are the free-list links of a free segment, the hash chain
 * of an allocated one (next only) and the span list of a span marker. Indices 0..54 are the
 * free-list heads (54 terminates the chain), 55 is the list anchor, 56 the
 * rotor. Unused indices form a pool that grows by doubling, kept topped up
 * before each operation as `vmem_populate` does, so no operation runs out
 * half-way. The hash is an Int32Array of bucket heads.
 *
 * Invariants (checked by `check()`): spans do not overlap and are tiled by
 * their segments; no two free segments are adjacent except across a marker;
 * every free segment is on the list of its size, the freemap says exactly
 * which lists are non-empty; every allocated segment is in the hash at its
 * start; the counters agree with the segments.
 *
 * Cost: instant-fit allocation and free are O(1) (free-list head, hash
 * bucket), without creating any JS object; best-fit and constrained
 * allocations search the free lists; next-fit scans from the rotor. The two
 * hot paths, a nosleep instant-fit allocation and a free, are each written
 * out in one function (the carve, the free-list moves and the hash steps
 * inline): under V8 every call that passes an address above 2^31 boxes it,
 * and the calls between illumos's small functions cost more than their
 * work. `alloc` itself only holds the quantum-cache pop, so that callers
 * inline it. The general paths take illumos's steps one by one
 * (allocGeneral, allocInner and segAlloc; xallocSearchPlain; xfreePlain and
 * hashDelete): they serve every other request, and every request of an
 * arena under fault injection, and tests drive arenas down both ways to hold
 * the written-out paths (instantFit, xallocSearch, xfreeInner) to them.
 *
 * Members are TypeScript `private`, not `#private` as elsewhere in the
 * project: measured as CPU time per operation (minimum of four fresh
 * processes each), `#private` made the quantum-cache alloc/free pair 1.24x
 * slower under Bun and 1.47x under Deno, vmem-frag-1m 1.46x (Bun) and
 * vmem-churn 1.07x (Bun) and 1.12x (Deno).
 *
 * Sleeping requests. A request without VM_NOSLEEP may have to wait for a free
 * (`cv_wait` in illumos). The synchronous `alloc`/`xalloc` cannot wait:
 * they refuse with KernelError("WOULDBLOCK") and leave every arena as it was
 * (counters included); `allocWait`/`xallocWait` wait for a free, an import or
 * `wakeup()` and try again. To undo the few changes illumos makes before it
 * waits (the next-fit rotor's step, a reap of quantum caches), a sleeping
 * request keeps a journal: counters are saved when an arena is first touched,
 * and the whole state of an arena is saved only once the request has passed
 * such a point, which is rare.
 *
 * Groups. Whatever arenas share lives in a {@link VmemGroup}: the list of
 * arenas whose quantum caches a failed request reaps, and the journal of the
 * sleeping request running among them. A kernel makes one group for its
 * arenas, so two kernels in one process never touch each other; arenas
 * created without one share a default group. Beside that default, the only
 * module state is a scratch register (`ADDR`, below) that a call writes and
 * its caller reads before anything else runs: nothing in it outlives a
 * synchronous call, so no await or callback ever sees another's value.
 *
 * @module
 */

import { checkInteger, checkSpan, describe, KernelError, MAX_ADDR } from "./errors.ts";
import { highbit, isPow2, TWO32 } from "../machine/bits.ts";
import { Mulberry32 } from "./random.ts";
import { qcacheSlabSize, type QcacheState, type QcacheStats, QuantumCache } from "./vmem_qcache.ts";

// ---- Flags (the values of illumos <sys/vmem.h>) ----

/** Sleep until the request can be satisfied (the default: it is 0). */
export const VM_SLEEP = 0x0;
/** Fail at once rather than wait. */
export const VM_NOSLEEP = 0x1;
/** The request must succeed: failure throws KernelError("ENOMEM"). */
export const VM_PANIC = 0x2;
/** Accepted for compatibility; no effect here. */
export const VM_PUSHPAGE = 0x4;
/** The flags passed through to imports and quantum caches. */
export const VM_KMFLAGS = 0xff;
/** Best-fit policy. */
export const VM_BESTFIT = 0x100;
/** First-fit policy. */
export const VM_FIRSTFIT = 0x200;
/** Next-fit policy (cycles through the arena with the rotor). */
export const VM_NEXTFIT = 0x400;
/** Instant-fit policy (the default; no bit of its own). */
export const VM_INSTANTFIT = 0x0;
/** Fail rather than reap and wait when the arena (not its source) is empty. */
export const VM_ABORT = 0x2000;
/** Prefer high addresses (no effect with next-fit). */
export const VM_ENDALLOC = 0x4000;

/** Arena creation flag: the arena's integers are identifiers, not memory. */
export const VMC_IDENTIFIER = 0x40000;
/** Arena creation flag: no quantum caches; imports are enlarged instead. */
export const VMC_NO_QCACHE = 0x20000;
/** Arena creation flag: accepted for compatibility (segment structures never run out here). */
export const VMC_POPULATOR = 0x10000;

/** Segment type: allocated. */
export const VMEM_ALLOC = 0x01;
/** Segment type: free. */
export const VMEM_FREE = 0x02;
/** Segment type: span marker. */
export const VMEM_SPAN = 0x10;
/** Segment type: the next-fit rotor (never reported). */
export const VMEM_ROTOR = 0x20;
/** Segment type: a walker marker (a walk mask with it returns at once). */
export const VMEM_WALKER = 0x40;
/** Walk flag: the callback may use the arena (the walk advances a marker). */
export const VMEM_REENTRANT = 0x80000000;

const ALLOC_FLAGS = VM_NOSLEEP | VM_PANIC | VM_PUSHPAGE | VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT |
  VM_ABORT | VM_ENDALLOC;
const CREATE_FLAGS = VMC_IDENTIFIER | VMC_NO_QCACHE | VMC_POPULATOR;
const POLICY = VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT;

// ---- Layout of the segment arrays ----

const NLISTS = 54; // sizes below 2^53 need lists 0..52
const FL_END = NLISTS; // terminating head of the chained free lists
const SEG0 = NLISTS + 1; // anchor of the arena list and of the span list
const ROTOR = NLISTS + 2;
const FIRST_SEG = NLISTS + 3;
const NIL = -1;

// Row offsets. Segment i owns bytes [32 i, 32 i + 32) of one buffer, seen
// as float64 by pos and as int32 by link: it starts at pos[(i << 2) |
// START] and ends at pos[(i << 2) | END], and its links are
// link[(i << 3) | ANEXT] to link[(i << 3) | KPREV], in the second half of
// the row. A segment's bounds and links thus share a cache line, which a
// search or a free that visits segments at random reads once instead of
// twice. A shift and an or, because engines check integer products and
// sums for overflow and bit operations not (vmem-frag-1m ran 8% slower with
// 2 * i + END).
const START = 0;
const END = 1;
/** Arena list (`vs_anext`, `vs_aprev`). */
const ANEXT = 4;
const APREV = 5;
/** Kin list (`vs_knext`, `vs_kprev`): free-list links, hash chain (next only) or span list. */
const KNEXT = 6;
const KPREV = 7;

/** Spare segment structures kept before each operation (span + middle split, twice over). */
const MINFREE = 8;
const HASH_INITIAL = 16;
const NQCACHE_MAX = 16;

// Counter slots. vk_free has none: it is vk_alloc less the segments in the hash.
const C_ALLOC = 0;
const C_WAIT = 1;
const C_FAIL = 2;
const C_LOOKUP = 3;
const C_SEARCH = 4;
const C_POPULATE = 5;
const C_CONTAINS = 6;
const C_CONTAINS_SEARCH = 7;
const C_INUSE = 8;
const C_IMPORT = 9;
const C_TOTAL = 10;
const NCOUNTERS = 11;

// Gate bits. The first two are locks (what an arena refuses mutations
// for); any bit sends a call past the quantum-cache fast paths.
const L_DEAD = 1;
const L_WALK = 2;
const L_LOCKED = L_DEAD | L_WALK;
/** A sleeping request of the arena's group runs (set on the group's quantum-cache arenas only). */
const G_JOURNAL = 4;
/** Requests wait on the arena: a free into a magazine must wake them too. */
const G_WAIT = 8;
/** Fault injection is on: every call takes the general, illumos-shaped paths, where it strikes. */
const G_PLAIN = 16;

/** The largest align and nocross whose fit tests are made on 32-bit integers. */
const BITS_MAX = 2 ** 30;

/**
 * The address register. V8 holds integers below 2^31 unboxed, but a larger
 * address handed to or returned from a call that is not inlined becomes a
 * heap number: one allocation per call. The internal allocation paths
 * (allocRequest, allocGeneral, allocInner, instantFit, nextfitAlloc,
 * xallocInner) leave their result here instead of returning it, and
 * segAlloc and xfreeInner take their address from here, so alloc, xalloc
 * and free allocate nothing.
 * Whoever reads it reads it at once: any call into an arena may overwrite it.
 * Shared by every arena of every group, which is safe because its value never
 * lives past the synchronous call that wrote it.
 */
const ADDR = new Float64Array(1);

// Rounding to a power of two divides and takes the ceiling, which is exact
// for a power of two, instead of taking a remainder: float `%` is a slow
// library call.

/** `P2ROUNDUP(x, align)` for a power-of-two align (x >= 0). */
function roundup(x: number, align: number): number {
  return Math.ceil(x / align) * align;
}

/** `P2PHASEUP(x, align, phase)`: the least y >= x with y = phase (mod align), 0 <= phase < align. */
function phaseup(x: number, align: number, phase: number): number {
  return Math.ceil((x - phase) / align) * align + phase;
}

/** The per-arena statistics (illumos kstats, named in TypeScript casing). */
export interface VmemStats {
  /** Segments allocated (including slabs of the quantum caches). */
  alloc: number;
  /** Segments freed. */
  free: number;
  /** Times a sleeping request waited. */
  wait: number;
  /** Failed constrained or fallback allocations (`vmem_xalloc` failures). */
  fail: number;
  /** Extra hash-chain steps taken by frees. */
  lookup: number;
  /** Segments looked at by searches (xalloc and next-fit). */
  search: number;
  /** Times the segment pool grew. */
  populate: number;
  /** `contains` calls. */
  contains: number;
  /** Spans looked at by `contains`. */
  containsSearch: number;
  /** Bytes (or identifiers) allocated. */
  memInuse: number;
  /** Bytes in imported spans. */
  memImport: number;
  /** Bytes in all spans. */
  memTotal: number;
}

/** One line of {@link Vmem.summary}: segments whose size in quanta has this power of two as floor. */
export interface VmemOrder {
  /** Smallest size of the order: `2^k * quantum`. */
  size: number;
  /** Allocated segments of this order. */
  inuseCount: number;
  /** Bytes in them (exact sizes). */
  inuseBytes: number;
  /** Free segments of this order. */
  freeCount: number;
  /** Bytes in them. */
  freeBytes: number;
}

/** FreeBSD's `show vmem`: totals and counts per size order. */
export interface VmemSummary {
  /** Arena name. */
  name: string;
  /** Arena quantum. */
  quantum: number;
  /** Bytes in all spans. */
  size: number;
  /** Bytes allocated. */
  inuse: number;
  /** Bytes free (size - inuse). */
  free: number;
  /** Number of spans. */
  spans: number;
  /** Number of allocated segments. */
  busySegments: number;
  /** Number of free segments. */
  freeSegments: number;
  /** Buckets of the allocated-segment hash. */
  hashBuckets: number;
  /** Segments by size order (orders with none left out). */
  orders: VmemOrder[];
  /** One entry per quantum cache. */
  qcaches: QcacheStats[];
}

/** Import function: returns the base of a new span of `size`, or 0. */
export type ImportFn = (source: Vmem, size: number, vmflag: number) => number;
/** Release function: gives a wholly free imported span back. */
export type ReleaseFn = (source: Vmem, addr: number, size: number) => void;

/** Options of {@link Vmem.create}. */
export interface VmemCreateOptions {
  /** Arena to import spans from. */
  source?: Vmem;
  /** Imports a span (default: `source.alloc(size, vmflag)`). Needs `source`. */
  importFn?: ImportFn;
  /** Releases a span (default: `source.free(addr, size)`; null: never release). Needs `source`. */
  releaseFn?: ReleaseFn | null;
  /** Largest size served by quantum caches (0: none). */
  qcacheMax?: number;
  /** VMC_IDENTIFIER, VMC_NO_QCACHE (VMC_POPULATOR accepted). */
  flags?: number;
  /** The group the arena joins (default: its source's, else the default group). */
  group?: VmemGroup;
}

function defaultImport(source: Vmem, size: number, vmflag: number): number {
  return source.alloc(size, vmflag);
}

function defaultRelease(source: Vmem, addr: number, size: number): void {
  source.free(addr, size);
}

/** The refusal a sleeping request meets when it would wait; `arena` is where. */
class WouldBlock extends KernelError {
  readonly arena: Vmem;
  constructor(arena: Vmem) {
    super("WOULDBLOCK", `a sleeping allocation in arena '${arena.name}' would wait for a free`);
    this.arena = arena;
  }
}

/** What the arenas of a group share: the package shows only the group. */
class GroupState {
  /** The group's arenas that have quantum caches, oldest first. */
  readonly qcacheArenas: Vmem[] = [];
  /** Non-zero while a sleeping request of the group runs: its number. */
  epoch = 0;
  /** The number of the last sleeping request. */
  seq = 0;
  /** The running request passed a point whose changes need whole-state copies to undo. */
  full = false;
  /** The arenas the running request touched, in the order it touched them. */
  readonly journaled: Vmem[] = [];
}

let stateOf: (group: VmemGroup) => GroupState;

/**
 * The arenas of one kernel (or of any set of arenas that belong together):
 * what they share, and nothing outside the group touches. `kmem_reap` reaps
 * the quantum caches of the group's arenas only, and a sleeping request keeps
 * its journal here, so arenas of two groups (two machines in one process)
 * never change each other. An arena joins its source's group, or the group
 * given at creation; bare arenas share one default group.
 */
export class VmemGroup {
  readonly #state = new GroupState();

  static {
    stateOf = (group) => group.#state;
  }
}

/** The group of arenas created with neither a group nor a source. */
const DEFAULT_GROUP = new VmemGroup();

interface VmemState {
  rows: ArrayBuffer;
  type: Uint8Array<ArrayBuffer>;
  imp: Uint8Array<ArrayBuffer>;
  hashTable: Int32Array<ArrayBuffer>;
  ctr: Float64Array<ArrayBuffer>;
  scalars: number[];
  qcaches: QcacheState[];
}

/** A sleeping request's wait, on the waiter list of every arena where room for it could appear. */
interface Waiter {
  /** Ends the wait: off every list, then the request retries. */
  resolve: () => void;
}

/**
 * A vmem arena.
 *
 * @example A heap: allocate by policy, with constraints, and free
 * ```ts
 * import { VM_BESTFIT, VM_NOSLEEP, Vmem, VMEM_ALLOC } from "./mod.ts";
 *
 * // A heap of 1 GiB at 0xc0000000 in 4 KiB pages, caching sizes up to 8 pages.
 * const heap = Vmem.create("heap", 0xc000_0000, 2 ** 30, 4096, { qcacheMax: 8 * 4096 });
 * const a = heap.alloc(3 * 4096, VM_NOSLEEP); // instant-fit, from a quantum cache; 0: no room
 * const b = heap.alloc(100 * 4096, VM_NOSLEEP | VM_BESTFIT); // the smallest segment that fits
 * // 64 KiB aligned on 64 KiB, crossing no 1 MiB line, below 0xc1000000.
 * const c = heap.xalloc(65536, 65536, 0, 2 ** 20, 0, 0xc100_0000, VM_NOSLEEP);
 * console.log(a.toString(16), b.toString(16), c.toString(16));
 * console.log(heap.size(VMEM_ALLOC)); // bytes allocated, the caches' slabs included
 * heap.free(a, 3 * 4096);
 * heap.free(b, 100 * 4096);
 * heap.xfree(c, 65536);
 * heap.check(); // every invariant of the arena
 * ```
 */
export class Vmem {
  /** Arena name. */
  readonly name: string;
  /** The unit of allocation (a power of two). */
  readonly quantum: number;
  /** The arena spans are imported from, if any. */
  readonly source: Vmem | null;
  /** Largest size served by quantum caches (0: none). */
  readonly qcacheMax: number;
  /** Creation flags (VMC_*). */
  readonly cflags: number;
  /** Smallest import (non-zero only with VMC_NO_QCACHE). */
  readonly minImport: number;

  /** Gate bits (L_*, G_*): zero when the quantum-cache fast paths may run. */
  private gate = 0;
  /** The group the arena belongs to (its reap list and sleeping-request journal). */
  readonly group: VmemGroup;
  /** The group's shared state (its reap list and journal). */
  private readonly gs: GroupState;
  /** log2(quantum), at most 31: the quantum-cache index of a size below 2^31 by a shift. */
  private readonly qshift: number;
  /** qcacheMax, at most 2^31: the sizes the fast paths of alloc and free hand to a cache. */
  private readonly qcacheFast: number;
  private readonly importFn: ImportFn | null;
  private readonly releaseFn: ReleaseFn | null;
  private readonly invQuantum: number;
  /**
   * quantum - 1 as a 32-bit mask, all ones for a quantum of 2^32 or more.
   * For a size in [1, 2^32], `(((size - 1) | qmask) >>> 0) + 1` is the
   * size rounded up to a quantum of at most 2^32; for a larger quantum it
   * is 2^32 while the rounded size is the quantum itself, so each use
   * takes the larger of the two.
   */
  private readonly qmask: number;
  private children = 0;
  private qcache: QuantumCache[] | null = null;

  // Segment arrays.
  private cap = 0;
  /** Start and end of segment i (rows of four float64: START, END, then the links). */
  private pos = new Float64Array(0);
  /** The same rows as int32: arena-list next/prev and kin-list next/prev of segment i (ANEXT .. KPREV). */
  private link = new Int32Array(this.pos.buffer);
  private type = new Uint8Array(0);
  private imp = new Uint8Array(0);
  private segFree = NIL;
  private nsegFree = 0;

  private freemapLo = 0;
  private freemapHi = 0;

  private hashTable: Int32Array = new Int32Array(HASH_INITIAL).fill(NIL);
  /** 32 - log2(buckets): a bucket is the top bits of a 32-bit product. */
  private hashShift = 32 - Math.log2(HASH_INITIAL);
  private hashCount = 0;
  /**
   * The last segment instantFit allocated and its bucket, so that a free
   * of it soon after need not hash its address (valid while the segment is
   * still the head of that bucket with that start; SEG0 matches no address).
   */
  private lastSeg = SEG0;
  private lastHash = 0;
  private hashGrowAt = 0;
  private hashShrinkAt = 0;

  private readonly ctr = new Float64Array(NCOUNTERS);

  private mtbf = 0;
  private mtbfRandom: Mulberry32 | null = null;

  private waiters: Waiter[] | null = null;

  // Journal of the current sleeping request.
  private jSeen = 0;
  private readonly jCtr = new Float64Array(NCOUNTERS);
  private jState: VmemState | null = null;

  private constructor(
    name: string,
    quantum: number,
    source: Vmem | null,
    importFn: ImportFn | null,
    releaseFn: ReleaseFn | null,
    qcacheMax: number,
    cflags: number,
    group: VmemGroup,
  ) {
    this.name = name;
    this.group = group;
    this.gs = stateOf(group);
    this.quantum = quantum;
    this.source = source;
    this.importFn = importFn;
    this.releaseFn = releaseFn;
    this.cflags = cflags;
    this.invQuantum = 1 / quantum;
    this.qmask = (Math.min(quantum, TWO32) - 1) | 0;
    const qshift = highbit(quantum) - 1;
    this.qshift = Math.min(qshift, 31);
    let nqcache = Math.min(Math.floor(qcacheMax / quantum), NQCACHE_MAX);
    let minImport = 0;
    if (cflags & VMC_NO_QCACHE) {
      // VMEM_QCACHE_SLABSIZE with C's int shift (x86: the count wraps at 32).
      minImport = Math.max(1 << highbit(3 * (nqcache * 2 ** qshift)), 64);
      nqcache = 0;
    }
    this.minImport = minImport;
    this.qcacheMax = nqcache * quantum;
    this.qcacheFast = Math.min(this.qcacheMax, 2 ** 31);
    this.grow(128);
    this.initLists();
    this.hashThresholds();
    if (nqcache > 0) {
      const slabsize = qcacheSlabSize(this.qcacheMax);
      const src = {
        slabAlloc: (size: number, vmflag: number): number => {
          this.allocInner(size, vmflag);
          return ADDR[0]!;
        },
        slabFree: (addr: number, size: number): void => {
          ADDR[0] = addr;
          this.xfreeAt(size);
        },
      };
      this.qcache = [];
      for (let i = 0; i < nqcache; i++) {
        const size = (i + 1) * quantum;
        this.qcache.push(new QuantumCache(`${name}_${size}`, size, quantum, slabsize, src));
      }
      this.gs.qcacheArenas.push(this);
      if (this.gs.epoch !== 0) this.gate |= G_JOURNAL;
    }
  }

  /**
   * `vmem_create`: a new arena called `name` whose first span is
   * `[base, base + size)` (size 0: no span). Refuses (EINVAL) a quantum that
   * is not a power of two, a span at 0, misaligned or ending past 2^53 - 1,
   * a source of the other kind (identifier or not) or with a smaller quantum,
   * import or release functions without a source, and unknown flags.
   */
  static create(
    name: string,
    base: number,
    size: number,
    quantum: number,
    opts?: VmemCreateOptions,
  ): Vmem {
    if (opts === undefined) opts = {};
    if (typeof name !== "string") {
      throw new KernelError("EINVAL", `name must be a string, got ${describe(name)}`);
    }
    checkInteger("quantum", quantum, 1);
    if (!isPow2(quantum)) {
      throw new KernelError("EINVAL", `quantum must be a power of two, got ${quantum}`);
    }
    checkInteger("base", base);
    checkInteger("size", size);
    const flags = checkInteger("flags", opts.flags ?? 0, 0, 0x7fffffff);
    if (flags & ~CREATE_FLAGS) {
      throw new KernelError("EINVAL", `unknown arena flags ${describe(flags & ~CREATE_FLAGS)}`);
    }
    const qcacheMax = checkInteger("qcacheMax", opts.qcacheMax ?? 0);
    const source = opts.source ?? null;
    if (source !== null) {
      if (!(source instanceof Vmem)) {
        throw new KernelError("EINVAL", `source must be an arena, got ${describe(source)}`);
      }
      if (source.gate & L_DEAD) {
        throw new KernelError("EINVAL", `source arena '${source.name}' is destroyed`);
      }
      if ((source.cflags & VMC_IDENTIFIER) !== (flags & VMC_IDENTIFIER)) {
        throw new KernelError(
          "EINVAL",
          `arena '${name}' and its source '${source.name}' must both be identifier arenas or neither`,
        );
      }
      if (quantum > source.quantum) {
        throw new KernelError(
          "EINVAL",
          `quantum ${quantum} of '${name}' exceeds quantum ${source.quantum} of its source '${source.name}'`,
        );
      }
    }
    if (
      (opts.importFn !== undefined || (opts.releaseFn !== undefined && opts.releaseFn !== null)) &&
      source === null
    ) {
      throw new KernelError(
        "EINVAL",
        `import and release functions of '${name}' need a source arena`,
      );
    }
    if (opts.importFn !== undefined && typeof opts.importFn !== "function") {
      throw new KernelError(
        "EINVAL",
        `importFn must be a function, got ${describe(opts.importFn)}`,
      );
    }
    if (
      opts.releaseFn !== undefined && opts.releaseFn !== null &&
      typeof opts.releaseFn !== "function"
    ) {
      throw new KernelError(
        "EINVAL",
        `releaseFn must be a function, got ${describe(opts.releaseFn)}`,
      );
    }
    const group = opts.group ?? source?.group ?? DEFAULT_GROUP;
    if (!(group instanceof VmemGroup)) {
      throw new KernelError("EINVAL", `group must be a VmemGroup, got ${describe(group)}`);
    }
    if (source !== null && source.group !== group) {
      throw new KernelError(
        "EINVAL",
        `arena '${name}' and its source '${source.name}' must be in one group`,
      );
    }
    if (base !== 0 || size !== 0) checkSpan(base, size, quantum, 1);
    const importFn = source === null ? null : opts.importFn ?? defaultImport;
    const releaseFn = source === null
      ? null
      : opts.releaseFn === undefined
      ? defaultRelease
      : opts.releaseFn;
    const vmp = new Vmem(name, quantum, source, importFn, releaseFn, qcacheMax, flags, group);
    if (source !== null) source.children++;
    if (size !== 0) vmp.spanCreate(base, size, 0);
    return vmp;
  }

  // ---- Public operations ----

  /**
   * `vmem_add`: adds the span `[base, base + size)`. Refuses (EINVAL) base
   * or size 0, a misaligned span, one ending past 2^53 - 1 or overlapping a
   * span of the arena.
   */
  add(base: number, size: number): void {
    if ((this.gate & L_LOCKED) !== 0) this.refuseLocked();
    checkSpan(base, size, this.quantum, 1);
    for (let s = this.link[(SEG0 << 3) | KNEXT]!; s !== SEG0; s = this.link[(s << 3) | KNEXT]!) {
      if (base < this.pos[(s << 2) | END]! && this.pos[(s << 2) | START]! < base + size) {
        throw new KernelError(
          "EINVAL",
          `span [${describe(base)}, +${describe(size)}) overlaps span [${
            describe(this.pos[(s << 2) | START])
          }, ${describe(this.pos[(s << 2) | END])}) of arena '${this.name}'`,
        );
      }
    }
    if (this.gs.epoch !== 0) this.journal();
    this.populate();
    this.spanCreate(base, size, 0);
  }

  /**
   * `vmem_alloc`: `size` units with policy VM_INSTANTFIT (default),
   * VM_BESTFIT, VM_FIRSTFIT or VM_NEXTFIT, optionally VM_ENDALLOC. Returns
   * the address, or 0 on failure with VM_NOSLEEP (or VM_ABORT). A sleeping
   * request that would wait throws KernelError("WOULDBLOCK") and changes
   * nothing (use {@link allocWait} to wait).
   */
  alloc(size: number, vmflag: number): number {
    // Arguments that are not numbers are refused here (a BigInt would throw
    // below, a string or a boolean be coerced). A throw, not a branch around
    // the fast path: the code after it stays unconditional, so a JIT that
    // inlines alloc and then free of the same size shares their arithmetic
    // (under Bun the quantum-cache pair is 15% slower with a branch), and
    // one that knows the arguments are numbers drops the test.
    if (typeof size !== "number" || typeof vmflag !== "number") {
      throw typeof size !== "number" ? badSize(size) : badFlags(vmflag);
    }
    // m === size - 1: size is an integer in [1, 2^32], and m a 32-bit
    // integer whatever the engine guessed size to be.
    const m = (size - 1) >>> 0;
    if (
      m === size - 1 && m < this.qcacheFast &&
      (vmflag & (~ALLOC_FLAGS | VM_NOSLEEP)) === VM_NOSLEEP && (vmflag | 0) === vmflag &&
      this.gate === 0
    ) {
      // The quantum-cache path of a nosleep request, with the pop of the
      // loaded magazine (kmem_cache_alloc's first step) inline. A size here
      // is in [1, 2^31], so its cache index is a shift.
      const qc = (this.qcache as QuantumCache[])[m >> this.qshift]!;
      const r = qc.rounds;
      if (r > 0) {
        const id = qc.magStore[qc.loadedBase + r - 1]!;
        qc.rounds = r - 1;
        const addr = -qc.bufKey[id]!;
        qc.bufKey[id] = addr;
        qc.nAlloc++;
        return addr;
      }
    }
    // Everything else, the magazine's misses included (allocRequest hands
    // a nosleep instant-fit request to instantFit). Through ADDR: every
    // return of this method is then a float64, and a caller that inlines it
    // has no address to box.
    this.allocRequest(size, vmflag);
    return ADDR[0]!;
  }

  /**
   * {@link alloc} past the quantum-cache fast path: a nosleep instant-fit
   * request of the segment allocator goes to instantFit, the rest to
   * allocGeneral. Kept apart from alloc, and small, because engines inline
   * only small functions: alloc into its callers, this into alloc.
   */
  private allocRequest(size: number, vmflag: number): void {
    const m = (size - 1) >>> 0;
    // The quantum-cache test first: a magazine's miss comes this way too.
    if (
      m === size - 1 && !(m < this.qcacheMax) &&
      (vmflag & (~VM_KMFLAGS | VM_NOSLEEP)) === VM_NOSLEEP &&
      (vmflag | 0) === vmflag && (this.gate | this.gs.epoch) === 0
    ) {
      this.instantFit(size, m, vmflag);
    } else {
      this.allocGeneral(size, vmflag);
    }
  }

  /** Every allocation but the fast paths': checks, then the journal of a sleeping request. */
  private allocGeneral(size: number, vmflag: number): void {
    if ((this.gate & L_LOCKED) !== 0) this.refuseLocked();
    if (!(Number.isInteger(size) && size >= 1 && size <= MAX_ADDR)) throw badSize(size);
    if (!validFlags(vmflag)) throw badFlags(vmflag);
    if (
      (vmflag & (VM_ENDALLOC | POLICY)) === VM_ENDALLOC &&
      Math.floor(size * this.invQuantum) * this.quantum !== size && !(size - 1 < this.qcacheMax)
    ) {
      throw new KernelError(
        "EINVAL",
        `instant-fit end allocation of ${size}, not a multiple of quantum ${this.quantum}`,
      );
    }
    if (this.gs.epoch !== 0) {
      this.journal();
      this.allocInner(size, vmflag);
      return;
    }
    if ((vmflag & VM_NOSLEEP) !== 0) {
      this.allocInner(size, vmflag);
      return;
    }
    Vmem.beginJournal(this);
    try {
      this.allocInner(size, vmflag);
      Vmem.commitJournal(this.gs);
    } catch (e) {
      Vmem.rollbackJournal(this.gs);
      throw e;
    }
  }

  /**
   * `vmem_xalloc`: `size` units at `phase` from an `align` boundary (align 0:
   * the quantum), not crossing a `nocross` boundary (0: any), inside
   * `[minaddr, maxaddr)` (0: no limit). Never uses the quantum caches.
   * Returns the address or 0; refusals and sleeping as {@link alloc}.
   */
  xalloc(
    size: number,
    align: number,
    phase: number,
    nocross: number,
    minaddr: number,
    maxaddr: number,
    vmflag: number,
  ): number {
    if ((this.gate & L_LOCKED) !== 0) this.refuseLocked();
    const a = this.checkXalloc(size, align, phase, nocross, minaddr, maxaddr, vmflag);
    if (this.gs.epoch !== 0) {
      this.journal();
      this.xallocInner(size, a, phase, nocross, minaddr, maxaddr, vmflag);
      return ADDR[0]!;
    }
    if ((vmflag & VM_NOSLEEP) !== 0) {
      this.xallocInner(size, a, phase, nocross, minaddr, maxaddr, vmflag);
      return ADDR[0]!;
    }
    Vmem.beginJournal(this);
    try {
      this.xallocInner(size, a, phase, nocross, minaddr, maxaddr, vmflag);
      Vmem.commitJournal(this.gs);
      return ADDR[0]!;
    } catch (e) {
      Vmem.rollbackJournal(this.gs);
      throw e;
    }
  }

  /**
   * A sleeping {@link alloc} that waits (as `cv_wait` does) until a free, an
   * import or {@link wakeup} makes room. Rejects with KernelError("ECANCELED")
   * when `signal` aborts, leaving the arena untouched. With VM_NOSLEEP it is
   * {@link alloc}.
   */
  allocWait(size: number, vmflag: number, signal?: AbortSignal): Promise<number> {
    return this.waitLoop(false, size, 0, 0, 0, 0, 0, vmflag, signal);
  }

  /** The waiting form of {@link xalloc} (see {@link allocWait}). */
  xallocWait(
    size: number,
    align: number,
    phase: number,
    nocross: number,
    minaddr: number,
    maxaddr: number,
    vmflag: number,
    signal?: AbortSignal,
  ): Promise<number> {
    return this.waitLoop(true, size, align, phase, nocross, minaddr, maxaddr, vmflag, signal);
  }

  /**
   * `vmem_free` of what {@link alloc} returned (`size` as asked). Refuses
   * (BADFREE, nothing changed) an address that is not allocated or a size
   * that differs, or, for sizes served by the quantum caches, an address that
   * is not a buffer of the matching cache.
   */
  free(addr: number, size: number): void {
    // As in alloc: arguments that are not numbers are refused by a throw.
    if (typeof addr !== "number" || typeof size !== "number") throw badFreeArgs(addr, size);
    const m = (size - 1) >>> 0; // as in alloc
    // An address below 1 goes to freeRequest to be refused: minus it could
    // be the key of a cached buffer.
    if (m === size - 1 && m < this.qcacheFast && this.gate === 0 && addr > 0) {
      // The quantum-cache path: the cache refuses any address that is not one of its buffers.
      (this.qcache as QuantumCache[])[m >> this.qshift]!.free(addr);
      return;
    }
    this.freeRequest(addr, size);
  }

  /**
   * {@link free} past the quantum-cache fast path: a free of the segment
   * allocator goes to xfreeInner, the rest to freeGeneral (small, as
   * allocRequest, to be inlined). No argument test on the way: an address
   * or a size that is no integer in [1, 2^53 - 1] matches no allocated
   * segment, and the refusal then says which (EINVAL, not BADFREE).
   */
  private freeRequest(addr: number, size: number): void {
    if ((this.gate | this.gs.epoch) === 0 && !(size - 1 < this.qcacheMax)) {
      ADDR[0] = addr;
      this.xfreeInner(size);
    } else {
      this.freeGeneral(addr, size);
    }
  }

  /** Every free but the fast paths': checks, the journal, a quantum cache or the segments. */
  private freeGeneral(addr: number, size: number): void {
    if ((this.gate & L_LOCKED) !== 0) this.refuseLocked();
    checkFreeArgs(addr, size);
    if (this.gs.epoch !== 0) this.journal();
    if (size - 1 < this.qcacheMax) {
      (this.qcache as QuantumCache[])[((size - 1) * this.invQuantum) | 0]!.free(addr);
      // A buffer in a magazine is room for requests of its size.
      if (this.waiters !== null) this.broadcast();
    } else {
      ADDR[0] = addr;
      this.xfreeAt(size);
    }
  }

  /** `vmem_xfree` of what {@link xalloc} returned. Refusals as {@link free}. */
  xfree(addr: number, size: number): void {
    if ((this.gate & L_LOCKED) !== 0) this.refuseLocked();
    checkFreeArgs(addr, size);
    if (this.gs.epoch !== 0) this.journal();
    ADDR[0] = addr;
    this.xfreeAt(size);
  }

  /** `vmem_size`: bytes allocated (VMEM_ALLOC), free (VMEM_FREE) or both. */
  size(typemask: number): number {
    if (!(Number.isInteger(typemask) && typemask >= 0 && typemask <= 0xffffffff)) {
      throw new KernelError(
        "EINVAL",
        `size type mask must be an integer in [0, 2^32), got ${describe(typemask)}`,
      );
    }
    let size = 0;
    if (typemask & VMEM_ALLOC) size += this.ctr[C_INUSE]!;
    if (typemask & VMEM_FREE) size += this.ctr[C_TOTAL]! - this.ctr[C_INUSE]!;
    return size;
  }

  /**
   * `vmem_contains`: whether `[addr, addr + size)` lies in one span (with
   * size 0: `start <= addr <= end` of a span).
   */
  contains(addr: number, size: number): boolean {
    if (this.gate & L_DEAD) this.refuseLocked();
    checkInteger("addr", addr);
    checkInteger("size", size);
    this.ctr[C_CONTAINS]!++;
    for (let s = this.link[(SEG0 << 3) | KNEXT]!; s !== SEG0; s = this.link[(s << 3) | KNEXT]!) {
      this.ctr[C_CONTAINS_SEARCH]!++;
      if (addr >= this.pos[(s << 2) | START]! && addr + size <= this.pos[(s << 2) | END]!) {
        return true;
      }
    }
    return false;
  }

  /**
   * `vmem_walk`: calls `fn(start, size, type)` for each segment whose type is
   * in `typemask` (VMEM_ALLOC, VMEM_FREE, VMEM_SPAN), in arena-list order.
   * Without VMEM_REENTRANT the arena is locked for the walk (calls that would
   * change it are refused with EDEADLK); with it, the walk advances a marker
   * past each segment before calling `fn`, which may then use the arena: the
   * walk goes on from the marker, so it never visits a segment twice and
   * sees what was added after the marker. A mask with VMEM_WALKER walks
   * nothing.
   */
  walk(
    typemask: number,
    fn: (start: number, size: number, type: "alloc" | "free" | "span") => void,
  ): void {
    if (this.gate & L_DEAD) this.refuseLocked();
    if (typeof typemask !== "number" || !Number.isInteger(typemask)) {
      throw new KernelError(
        "EINVAL",
        `walk type mask must be an integer, got ${describe(typemask)}`,
      );
    }
    if (typemask & VMEM_WALKER) return;
    const reentrant = (typemask & VMEM_REENTRANT) !== 0;
    const mask = typemask & (VMEM_ALLOC | VMEM_FREE | VMEM_SPAN);
    if (reentrant && (this.gate & L_WALK) !== 0) this.refuseLocked();
    this.populate();
    const walker = this.getseg();
    this.type[walker] = VMEM_WALKER;
    this.pos[(walker << 2) | START] = this.pos[(walker << 2) | END] = 0;
    this.imp[walker] = 0;
    this.ainsert(SEG0, walker);
    const wasLocked = this.gate & L_WALK;
    if (!reentrant) this.gate |= L_WALK;
    try {
      for (
        let vsp = this.link[(SEG0 << 3) | ANEXT]!;
        vsp !== SEG0;
        vsp = this.link[(vsp << 3) | ANEXT]!
      ) {
        const t = this.type[vsp]!;
        if ((t & mask) === 0) continue;
        const start = this.pos[(vsp << 2) | START]!;
        const size = this.pos[(vsp << 2) | END]! - start;
        const name = t === VMEM_ALLOC ? "alloc" : t === VMEM_FREE ? "free" : "span";
        if (reentrant) {
          this.advance(walker, vsp);
          fn(start, size, name);
          if (this.gate & L_DEAD) return;
          vsp = walker;
        } else {
          fn(start, size, name);
        }
      }
    } finally {
      if (!reentrant && !wasLocked) this.gate &= ~L_WALK;
      if ((this.gate & L_DEAD) === 0) {
        this.advance(walker, NIL);
        this.putseg(walker);
      }
    }
  }

  /**
   * `vmem_destroy`: purges the quantum caches, then drops the arena and
   * returns what is still allocated (bytes or identifiers). Imported spans
   * are not given back: they stay allocated in the source. Refuses (EBUSY)
   * while the arena is the source of a live arena.
   */
  destroy(): number {
    if ((this.gate & L_LOCKED) !== 0) this.refuseLocked();
    if (this.children > 0) {
      throw new KernelError(
        "EBUSY",
        `arena '${this.name}' is the source of ${this.children} live arena(s)`,
      );
    }
    if (this.gs.epoch !== 0) this.journal();
    if (this.qcache !== null) {
      for (const qc of this.qcache) qc.purge();
      const list = this.gs.qcacheArenas;
      list.splice(list.indexOf(this), 1);
    }
    const leaked = this.ctr[C_INUSE]!;
    this.gate |= L_DEAD;
    if (this.source !== null) this.source.children--;
    // Its own requests retry and are refused (EINVAL: destroyed), wherever
    // they were blocked; others blocked here retry elsewhere.
    this.broadcast();
    return leaked;
  }

  /**
   * Wakes every request waiting on this arena (for outside resources coming
   * free), those of arenas importing from it and those of its own that wait
   * in a source included.
   */
  wakeup(): void {
    this.broadcast();
  }

  /**
   * `vmem_mtbf` for this arena: a nosleep allocation fails when a draw of a
   * Mulberry32 generator seeded with `seed` is a multiple of `mtbf` (about
   * once every `mtbf` calls). 0 turns it off. While it is on, every call
   * takes the general, illumos-shaped paths.
   */
  setMtbf(mtbf: number, seed: number): void {
    checkInteger("mtbf", mtbf, 0, 0xffffffff);
    checkInteger("seed", seed, 0, 0xffffffff);
    this.mtbf = mtbf;
    this.mtbfRandom = mtbf === 0 ? null : new Mulberry32(seed);
    if (mtbf === 0) this.gate &= ~G_PLAIN;
    else this.gate |= G_PLAIN;
  }

  /** Empties the depots of this arena's quantum caches (`vmem_qcache_reap`). */
  reap(): void {
    if ((this.gate & L_LOCKED) !== 0) this.refuseLocked();
    if (this.gs.epoch !== 0) this.journal();
    this.reapQcaches();
  }

  /** The counters (a fresh object). */
  get stats(): VmemStats {
    const c = this.ctr;
    return {
      alloc: c[C_ALLOC]!,
      free: c[C_ALLOC]! - this.hashCount,
      wait: c[C_WAIT]!,
      fail: c[C_FAIL]!,
      lookup: c[C_LOOKUP]!,
      search: c[C_SEARCH]!,
      populate: c[C_POPULATE]!,
      contains: c[C_CONTAINS]!,
      containsSearch: c[C_CONTAINS_SEARCH]!,
      memInuse: c[C_INUSE]!,
      memImport: c[C_IMPORT]!,
      memTotal: c[C_TOTAL]!,
    };
  }

  /** True once {@link destroy} has run. */
  get destroyed(): boolean {
    return (this.gate & L_DEAD) !== 0;
  }

  /** FreeBSD's `show vmem`: totals, and counts and bytes per size order. */
  summary(): VmemSummary {
    const orders: VmemOrder[] = [];
    let spans = 0, busy = 0, free = 0;
    for (let s = this.link[(SEG0 << 3) | ANEXT]!; s !== SEG0; s = this.link[(s << 3) | ANEXT]!) {
      const t = this.type[s];
      if (t === VMEM_SPAN) spans++;
      if (t !== VMEM_ALLOC && t !== VMEM_FREE) continue;
      const size = this.pos[(s << 2) | END]! - this.pos[(s << 2) | START]!;
      const ord = Math.max(highbit(Math.floor(size * this.invQuantum)) - 1, 0);
      while (orders.length <= ord) {
        orders.push({
          size: 2 ** orders.length * this.quantum,
          inuseCount: 0,
          inuseBytes: 0,
          freeCount: 0,
          freeBytes: 0,
        });
      }
      if (t === VMEM_ALLOC) {
        busy++;
        orders[ord]!.inuseCount++;
        orders[ord]!.inuseBytes += size;
      } else {
        free++;
        orders[ord]!.freeCount++;
        orders[ord]!.freeBytes += size;
      }
    }
    return {
      name: this.name,
      quantum: this.quantum,
      size: this.ctr[C_TOTAL]!,
      inuse: this.ctr[C_INUSE]!,
      free: this.ctr[C_TOTAL]! - this.ctr[C_INUSE]!,
      spans,
      busySegments: busy,
      freeSegments: free,
      hashBuckets: this.hashTable.length,
      orders: orders.filter((o) => o.inuseCount + o.freeCount > 0),
      qcaches: this.qcache === null ? [] : this.qcache.map((q) => q.stats()),
    };
  }

  /** Every segment and marker in arena order, then the free lists (FreeBSD's `vmem_dump`). */
  dump(): string {
    const hex = (x: number) => "0x" + x.toString(16);
    const typeName = (t: number) =>
      t === VMEM_ALLOC
        ? "alloc"
        : t === VMEM_FREE
        ? "free"
        : t === VMEM_SPAN
        ? "span"
        : t === VMEM_ROTOR
        ? "rotor"
        : t === VMEM_WALKER
        ? "walker"
        : `type ${t}`;
    const out: string[] = [`vmem '${this.name}' quantum ${this.quantum}`];
    for (let s = this.link[(SEG0 << 3) | ANEXT]!; s !== SEG0; s = this.link[(s << 3) | ANEXT]!) {
      const t = this.type[s]!;
      if (t === VMEM_ROTOR || t === VMEM_WALKER) {
        out.push(`\t#${s}: ${typeName(t)}`);
        continue;
      }
      const st = this.pos[(s << 2) | START]!;
      const imp = t === VMEM_SPAN && this.imp[s] ? " imported" : "";
      out.push(`\t#${s}: ${hex(st)} ${this.pos[(s << 2) | END]! - st} ${typeName(t)}${imp}`);
    }
    for (let i = 0; i < NLISTS; i++) {
      const first = this.link[(i << 3) | KNEXT]!;
      if (first <= FL_END) continue;
      out.push(`freelist[${i}]`);
      for (let s = first; s > FL_END; s = this.link[(s << 3) | KNEXT]!) {
        out.push(
          `\t#${s}: ${hex(this.pos[(s << 2) | START]!)} ${
            this.pos[(s << 2) | END]! - this.pos[(s << 2) | START]!
          }`,
        );
      }
    }
    if (this.qcache !== null) {
      for (const q of this.qcache) {
        const st = q.stats();
        out.push(
          `qcache '${q.name}': ${st.slabs} slabs, ${st.bufInUse} in use, ${st.bufCached} cached, ${st.bufSlab} free`,
        );
      }
    }
    return out.join("\n");
  }

  /**
   * FreeBSD's `vmem_whatis`: which segment of this arena holds `addr`, as
   * `"0x.. is 0x..+off in VMEM 'name' (allocated|free)"`, with the quantum
   * cache buffer when there is one; null when no segment does.
   */
  whatis(addr: number): string | null {
    checkInteger("addr", addr);
    for (let s = this.link[(SEG0 << 3) | ANEXT]!; s !== SEG0; s = this.link[(s << 3) | ANEXT]!) {
      const t = this.type[s];
      if (t !== VMEM_ALLOC && t !== VMEM_FREE) continue;
      const st = this.pos[(s << 2) | START]!, en = this.pos[(s << 2) | END]!;
      if (addr < st || addr > en - 1) continue;
      let text = `0x${addr.toString(16)} is 0x${st.toString(16)}+${
        addr - st
      } in VMEM '${this.name}' (${t === VMEM_ALLOC ? "allocated" : "free"})`;
      if (t === VMEM_ALLOC && this.qcache !== null) {
        for (const q of this.qcache) {
          const w = q.whatis(addr);
          if (w !== null) {
            text += `, ${w}`;
            break;
          }
        }
      }
      return text;
    }
    return null;
  }

  /**
   * Verifies every invariant: the arena list (spans tiled by their segments,
   * in address order, no overlap between spans, no adjacent free segments
   * except across a marker), the span list, the free lists and freemap, the
   * hash, the segment pool, the counters and the quantum caches. Throws
   * KernelError("CORRUPT") naming the first violation.
   */
  check(): void {
    if (this.gate & L_DEAD) return;
    const bad = (what: string): never => {
      throw new KernelError("CORRUPT", `arena '${this.name}': ${what}`);
    };
    const q = this.quantum;
    const T = this.type, P = this.pos;
    const seen = new Uint8Array(this.cap);
    let inuse = 0, total = 0, imported = 0, nalloc = 0, nfree = 0, rotors = 0;
    const spans: number[] = [];
    let span = NIL;
    let cursor = 0; // next expected start inside the current span
    let prevType = 0; // type of the previous segment (markers skipped)
    let prevAcrossMarker = false;
    let n = 0;
    for (
      let s = this.link[(SEG0 << 3) | ANEXT]!, p = SEG0;
      s !== SEG0;
      p = s, s = this.link[(s << 3) | ANEXT]!
    ) {
      if (++n > this.cap) bad("arena list loops");
      if (this.link[(s << 3) | APREV] !== p) bad(`arena list back link of #${s}`);
      if (s < FIRST_SEG && s !== ROTOR) bad(`list head #${s} on the arena list`);
      if (seen[s]) bad(`#${s} twice on the arena list`);
      seen[s] = 1;
      const t = T[s]!;
      if (t === VMEM_ROTOR || t === VMEM_WALKER) {
        if (t === VMEM_ROTOR) rotors++;
        prevAcrossMarker = true;
        continue;
      }
      if (t === VMEM_SPAN) {
        if (span !== NIL && cursor !== P[(span << 2) | END]) {
          bad(`span at ${P[(span << 2) | START]} not tiled: segments end at ${cursor}`);
        }
        span = s;
        cursor = P[(s << 2) | START]!;
        spans.push(s);
        total += P[(s << 2) | END]! - P[(s << 2) | START]!;
        if (this.imp[s]) imported += P[(s << 2) | END]! - P[(s << 2) | START]!;
        if (
          P[(s << 2) | START] === 0 || P[(s << 2) | START]! % q !== 0 ||
          P[(s << 2) | END]! % q !== 0 ||
          P[(s << 2) | END]! <= P[(s << 2) | START]! || P[(s << 2) | END]! > MAX_ADDR
        ) {
          bad(`span [${P[(s << 2) | START]}, ${P[(s << 2) | END]}) misaligned or empty`);
        }
        prevType = t;
        prevAcrossMarker = false;
        continue;
      }
      if (t !== VMEM_ALLOC && t !== VMEM_FREE) bad(`#${s} has type ${t}`);
      if (span === NIL) bad(`segment #${s} before any span`);
      if (P[(s << 2) | START] !== cursor) {
        bad(`segment #${s} starts at ${P[(s << 2) | START]}, expected ${cursor}`);
      }
      const rend = roundup(P[(s << 2) | END]!, q);
      if (P[(s << 2) | END]! <= P[(s << 2) | START]! || rend > P[(span << 2) | END]!) {
        bad(`segment #${s} [${P[(s << 2) | START]}, ${P[(s << 2) | END]}) outside its span`);
      }
      cursor = rend;
      if (t === VMEM_FREE) {
        nfree++;
        if (P[(s << 2) | END]! % q !== 0) {
          bad(`free segment #${s} end ${P[(s << 2) | END]} misaligned`);
        }
        if (prevType === VMEM_FREE && !prevAcrossMarker) {
          bad(`adjacent free segments ending at ${P[(s << 2) | START]}`);
        }
      } else {
        nalloc++;
        inuse += P[(s << 2) | END]! - P[(s << 2) | START]!;
      }
      prevType = t;
      prevAcrossMarker = false;
    }
    if (span !== NIL && cursor !== P[(span << 2) | END]) {
      bad(`span at ${P[(span << 2) | START]} not tiled: segments end at ${cursor}`);
    }
    if (rotors !== 1) bad(`${rotors} rotors on the arena list`);
    // Spans: the kin list holds the same markers in the same order; none overlap.
    let i = 0;
    for (
      let s = this.link[(SEG0 << 3) | KNEXT]!, p = SEG0;
      s !== SEG0;
      p = s, s = this.link[(s << 3) | KNEXT]!
    ) {
      if (this.link[(s << 3) | KPREV] !== p) bad("span list back link");
      if (spans[i++] !== s) bad(`span list disagrees with the arena list at span ${i}`);
    }
    if (i !== spans.length) bad("span list shorter than the arena list's spans");
    const sorted = spans.slice().sort((a, b) => P[(a << 2) | START]! - P[(b << 2) | START]!);
    for (let k = 1; k < sorted.length; k++) {
      if (P[(sorted[k]! << 2) | START]! < P[(sorted[k - 1]! << 2) | END]!) {
        bad(
          `spans at ${P[(sorted[k - 1]! << 2) | START]} and ${
            P[(sorted[k]! << 2) | START]
          } overlap`,
        );
      }
    }
    // Free lists and freemap: heads in order, each member free, on the list of its size.
    let listed = 0;
    let steps = 0;
    for (let s = 0, p = NIL; s !== NIL; p = s, s = this.link[(s << 3) | KNEXT]!) {
      if (this.link[(s << 3) | KPREV] !== p) bad(`free list back link at #${s}`);
      if (++steps > this.cap) bad("free lists loop");
      if (s > FL_END) {
        if (T[s] !== VMEM_FREE) bad(`#${s} on a free list is not free`);
        listed++;
      }
    }
    let head = -1;
    for (let s = 0; s !== NIL; s = this.link[(s << 3) | KNEXT]!) {
      if (s <= FL_END) {
        if (s !== head + 1) bad(`free-list heads out of order at ${s}`);
        head = s;
        const nonEmpty = this.link[(s << 3) | KNEXT]! > FL_END;
        if (s < NLISTS && nonEmpty !== this.listBit(s)) bad(`freemap bit ${s} is ${!nonEmpty}`);
        continue;
      }
      if (highbit(P[(s << 2) | END]! - P[(s << 2) | START]!) - 1 !== head) {
        bad(`free segment of ${P[(s << 2) | END]! - P[(s << 2) | START]!} on list ${head}`);
      }
      if (!seen[s]) bad(`free segment #${s} is on a list but not in the arena`);
    }
    if (head !== FL_END) bad("free-list chain does not reach its end");
    if (listed !== nfree) bad(`${nfree} free segments but ${listed} on the free lists`);
    // Hash.
    let hashed = 0;
    for (let h = 0; h < this.hashTable.length; h++) {
      for (let s = this.hashTable[h]!; s !== NIL; s = this.link[(s << 3) | KNEXT]!) {
        if (T[s] !== VMEM_ALLOC) bad(`#${s} in the hash is not allocated`);
        if (this.hashIndex(P[(s << 2) | START]!) !== h) {
          bad(`#${s} in hash bucket ${h} of another address`);
        }
        if (!seen[s]) bad(`allocated #${s} in the hash but not in the arena`);
        if (++hashed > nalloc) bad("hash holds more than the allocated segments");
      }
    }
    if (hashed !== nalloc || this.hashCount !== nalloc) {
      bad(`${nalloc} allocated, ${hashed} hashed`);
    }
    // Pool.
    let pooled = 0;
    for (let s = this.segFree; s !== NIL; s = this.link[(s << 3) | KNEXT]!) {
      if (seen[s] || s < FIRST_SEG) bad(`pool holds live #${s}`);
      if (++pooled > this.cap) bad("segment pool loops");
    }
    if (pooled !== this.nsegFree) bad(`pool count ${this.nsegFree}, found ${pooled}`);
    let live = 0;
    for (let s = FIRST_SEG; s < this.cap; s++) live += seen[s]!;
    if (live + pooled !== this.cap - FIRST_SEG) bad("segments lost from the pool");
    // Counters.
    const c = this.ctr;
    if (c[C_INUSE] !== inuse) bad(`mem_inuse ${c[C_INUSE]}, segments hold ${inuse}`);
    if (c[C_TOTAL] !== total) bad(`mem_total ${c[C_TOTAL]}, spans hold ${total}`);
    if (c[C_IMPORT] !== imported) bad(`mem_import ${c[C_IMPORT]}, imported spans hold ${imported}`);
    if (c[C_ALLOC]! < nalloc) bad(`${c[C_ALLOC]} allocations counted, ${nalloc} allocated`);
    // Quantum caches: every slab is an allocated segment of the slab size.
    if (this.qcache !== null) {
      for (const qc of this.qcache) {
        qc.check();
        qc.forEachSlab((base, size) => {
          const s = this.hashFind(base);
          if (s === NIL || P[(s << 2) | END]! - P[(s << 2) | START]! !== size) {
            bad(`slab at ${base} of '${qc.name}' is not an allocated segment`);
          }
        });
      }
    }
  }

  // ---- Internals: refusals, journal, waiting ----

  /** Refuses a call made while the arena is being walked or is destroyed. */
  private refuseLocked(): never {
    if (this.gate & L_DEAD) throw new KernelError("EINVAL", `arena '${this.name}' is destroyed`);
    throw new KernelError("EDEADLK", `arena '${this.name}' is locked by a walk in progress`);
  }

  /** Records this arena in the journal of the running sleeping request. */
  private journal(): void {
    const g = this.gs;
    if (this.jSeen !== g.epoch) {
      this.jSeen = g.epoch;
      this.jCtr.set(this.ctr);
      this.jState = null;
      g.journaled.push(this);
    }
    if (g.full && this.jState === null) this.jState = this.saveState();
  }

  /** From here on, changes of the running sleeping request need whole-state copies to undo. */
  private journalFull(): void {
    if (this.gs.epoch === 0) return;
    this.gs.full = true;
    this.journal();
  }

  /** Refuses what illumos would panic on in vmem_xalloc's arguments. */
  private checkXalloc(
    size: number,
    align: number,
    phase: number,
    nocross: number,
    minaddr: number,
    maxaddr: number,
    vmflag: number,
  ): number {
    if (!(Number.isInteger(size) && size >= 1 && size <= MAX_ADDR)) throw badSize(size);
    checkInteger("align", align);
    checkInteger("phase", phase);
    checkInteger("nocross", nocross);
    checkInteger("minaddr", minaddr);
    checkInteger("maxaddr", maxaddr);
    if (!validFlags(vmflag)) throw badFlags(vmflag);
    const q = this.quantum;
    const a = align !== 0 ? align : q;
    if (a % q !== 0 || phase % q !== 0 || nocross % q !== 0) {
      throw badXalloc(size, align, phase, nocross, `parameters not quantum (${q}) aligned`);
    }
    if (nocross !== 0 && (a > nocross || roundup(phase + size, a) > nocross)) {
      throw badXalloc(size, align, phase, nocross, "overconstrained allocation");
    }
    if (phase >= a || !isPow2(a) || (nocross !== 0 && !isPow2(nocross))) {
      throw badXalloc(size, align, phase, nocross, "parameters inconsistent or invalid");
    }
    if (maxaddr !== 0 && minaddr > maxaddr) {
      throw new KernelError(
        "EINVAL",
        `xalloc: minaddr ${describe(minaddr)} above maxaddr ${describe(maxaddr)}`,
      );
    }
    if ((vmflag & VM_ENDALLOC) !== 0 && (nocross !== 0 || maxaddr !== 0)) {
      throw badXalloc(
        size,
        align,
        phase,
        nocross,
        `end allocation with nocross or maxaddr (maxaddr ${maxaddr})`,
      );
    }
    return a;
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
    vmflag: number,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    for (;;) {
      if (signal?.aborted) throw cancelled(this);
      let blocked: Vmem;
      try {
        return constrained
          ? this.xalloc(size, align, phase, nocross, minaddr, maxaddr, vmflag)
          : this.alloc(size, vmflag);
      } catch (e) {
        if (!(e instanceof WouldBlock)) throw e;
        blocked = e.arena;
      }
      if (blocked.gate & L_DEAD) {
        throw new KernelError("EINVAL", `arena '${blocked.name}' was destroyed`);
      }
      blocked.ctr[C_WAIT]!++;
      await this.sleep(blocked, signal);
    }
  }

  /**
   * `cv_wait` for a request of this arena that would wait in `blocked`:
   * resolves at the next broadcast of any arena where room for it could
   * appear (this one, each source up to `blocked`, `blocked`), rejects if
   * `signal` aborts.
   */
  private sleep(blocked: Vmem, signal: AbortSignal | undefined): Promise<void> {
    const arenas: Vmem[] = [this];
    while (arenas[arenas.length - 1] !== blocked) {
      const next = arenas[arenas.length - 1]!.source;
      if (next === null) {
        // Blocked outside the source chain (an import function's doing).
        arenas.length = 1;
        arenas.push(blocked);
        break;
      }
      arenas.push(next);
    }
    return new Promise<void>((resolve, reject) => {
      const leave = () => {
        for (const x of arenas) x.unwait(waiter);
      };
      const onAbort = () => {
        leave();
        reject(cancelled(this));
      };
      const waiter: Waiter = {
        resolve: () => {
          leave();
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      for (const x of arenas) {
        (x.waiters ??= []).push(waiter);
        x.gate |= G_WAIT;
      }
    });
  }

  /** Takes `w` off this arena's waiter list, if it is there. */
  private unwait(w: Waiter): void {
    const list = this.waiters;
    if (list === null) return;
    const i = list.indexOf(w);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) {
      this.waiters = null;
      this.gate &= ~G_WAIT;
    }
  }

  /** `cv_broadcast`: every request waiting on this arena retries. */
  private broadcast(): void {
    const list = this.waiters;
    if (list === null) return;
    this.waiters = null;
    this.gate &= ~G_WAIT;
    for (const w of list) w.resolve();
  }

  /** True when vmem_mtbf's fault injection fails this nosleep call. */
  private mtbfHit(): boolean {
    return (this.mtbfRandom as Mulberry32).next() % this.mtbf === 0;
  }

  // ---- Internals: allocation paths (illumos's functions) ----

  /** `vmem_alloc` after validation; the address (0 on failure) is left in ADDR. */
  private allocInner(size: number, vmflag: number): void {
    if (size - 1 < this.qcacheMax) {
      ADDR[0] = (this.qcache as QuantumCache[])[((size - 1) * this.invQuantum) | 0]!.alloc(
        vmflag & VM_KMFLAGS,
      );
      return;
    }
    if (this.mtbf !== 0 && (vmflag & (VM_NOSLEEP | VM_PANIC)) === VM_NOSLEEP && this.mtbfHit()) {
      ADDR[0] = 0;
      return;
    }
    if (vmflag & VM_NEXTFIT) {
      this.nextfitAlloc(size, vmflag);
      return;
    }
    if (vmflag & (VM_BESTFIT | VM_FIRSTFIT)) {
      this.xallocInner(size, this.quantum, 0, 0, 0, 0, vmflag);
      return;
    }
    if (this.nsegFree < MINFREE) this.populate();
    let flist: number;
    if (isPow2(size)) flist = this.firstList(highbit(size) - 1);
    else flist = this.firstList(highbit(size));
    if (flist < 0) {
      this.xallocInner(size, this.quantum, 0, 0, 0, 0, vmflag);
      return;
    }
    const vsp = this.link[(flist << 3) | KNEXT]!;
    let addr = this.pos[(vsp << 2) | START]!;
    if (vmflag & VM_ENDALLOC) addr += this.pos[(vsp << 2) | END]! - (addr + size);
    ADDR[0] = addr;
    this.segAlloc(vsp, size);
  }

  /**
   * A nosleep instant-fit allocation of `size` in [1, 2^32] that no quantum
   * cache serves (`m` = size - 1), in an arena whose gate is open:
   * allocInner followed by segAlloc, the carve and the hash insert written
   * out in one piece. Its free segment comes from the head of list `flist`,
   * so segAlloc's test that the remainder keeps its list is one comparison
   * with the list's least size (2^flist, kept in its head's END).
   */
  private instantFit(size: number, m: number, vmflag: number): void {
    if (this.nsegFree < MINFREE) this.populate();
    // highbit(size - 1): the first list whose members all fit (log2(size)
    // for a power of two).
    const flist = this.firstList(32 - Math.clz32(m));
    if (flist < 0) {
      this.xallocInner(size, this.quantum, 0, 0, 0, 0, vmflag);
      return;
    }
    const P = this.pos, L = this.link, T = this.type;
    let vsp = L[(flist << 3) | KNEXT]!;
    const addr = P[(vsp << 2) | START]!, vsEnd = P[(vsp << 2) | END]!;
    // size rounded up to the quantum, without a float rounding (see qmask).
    const addrEnd = addr + Math.max(((m | this.qmask) >>> 0) + 1, this.quantum);
    const rest = vsEnd - addrEnd;
    if (rest >= P[(flist << 2) | END]!) {
      // segAlloc's fast path: the remainder keeps the segment's place on its
      // list; the new segment goes before it.
      P[(vsp << 2) | START] = addrEnd;
      const n = this.segFree;
      this.segFree = L[(n << 3) | KNEXT]!;
      this.nsegFree--;
      P[(n << 2) | START] = addr;
      this.imp[n] = 0;
      const prev = L[(vsp << 3) | APREV]!;
      L[(n << 3) | ANEXT] = vsp;
      L[(n << 3) | APREV] = prev;
      L[(prev << 3) | ANEXT] = n;
      L[(vsp << 3) | APREV] = n;
      vsp = n;
    } else {
      // freelistDelete(vsp), the head of list flist.
      const fn = L[(vsp << 3) | KNEXT]!;
      if (fn <= FL_END) {
        if (flist < 32) this.freemapLo ^= 1 << flist;
        else this.freemapHi ^= 1 << (flist - 32);
      }
      L[(flist << 3) | KNEXT] = fn;
      L[(fn << 3) | KPREV] = flist;
      if (rest !== 0) {
        // The remainder (below 2^(flist + 1), which may be 2^32 or more on
        // a list of a large segment): segCreate after vsp, then
        // freelistInsert.
        const t = this.segFree;
        this.segFree = L[(t << 3) | KNEXT]!;
        this.nsegFree--;
        P[(t << 2) | START] = addrEnd;
        P[(t << 2) | END] = vsEnd;
        this.imp[t] = 0;
        const nx = L[(vsp << 3) | ANEXT]!;
        L[(t << 3) | ANEXT] = nx;
        L[(t << 3) | APREV] = vsp;
        L[(vsp << 3) | ANEXT] = t;
        L[(nx << 3) | APREV] = t;
        const i = rest < TWO32 ? 31 - Math.clz32(rest) : highbit(rest) - 1;
        T[t] = VMEM_FREE;
        if (i < 32) this.freemapLo |= 1 << i;
        else this.freemapHi |= 1 << (i - 32);
        const hn = L[(i << 3) | KNEXT]!;
        L[(t << 3) | KNEXT] = hn;
        L[(t << 3) | KPREV] = i;
        L[(i << 3) | KNEXT] = t;
        L[(hn << 3) | KPREV] = t;
        if (this.waiters !== null) this.broadcast();
      }
    }
    P[(vsp << 2) | END] = addr + size;
    // hashInsert(vsp).
    T[vsp] = VMEM_ALLOC;
    const h = Math.imul((addr * this.invQuantum) >>> 0, 0x9e3779b1) >>> this.hashShift;
    const H = this.hashTable;
    L[(vsp << 3) | KNEXT] = H[h]!;
    H[h] = vsp;
    this.lastSeg = vsp;
    this.lastHash = h;
    const c = this.ctr;
    c[C_ALLOC]!++;
    c[C_INUSE]! += size;
    if (++this.hashCount >= this.hashGrowAt) this.hashRescale();
    ADDR[0] = addr;
  }

  /** `vmem_nextfit_alloc`; the address is left in ADDR. */
  private nextfitAlloc(size: number, vmflag: number): void {
    const realsize = roundup(size, this.quantum);
    if (this.nsegFree < MINFREE) this.populate();
    let T = this.type, P = this.pos;
    let vsp = this.link[(ROTOR << 3) | ANEXT]!;
    if (T[vsp] === VMEM_FREE) {
      const vsSize = P[(vsp << 2) | END]! - P[(vsp << 2) | START]!;
      if (vsSize > realsize && highbit(vsSize) === highbit(vsSize - realsize)) {
        const addr = P[(vsp << 2) | START]!;
        P[(vsp << 2) | START] = addr + realsize;
        this.hashInsert(this.segCreate(this.link[(ROTOR << 3) | APREV]!, addr, addr + size));
        ADDR[0] = addr;
        return;
      }
    }
    for (;;) {
      this.ctr[C_SEARCH]!++;
      if (T[vsp] === VMEM_FREE && P[(vsp << 2) | END]! - P[(vsp << 2) | START]! >= size) break;
      vsp = this.link[(vsp << 3) | ANEXT]!;
      if (vsp === ROTOR) {
        if ((vmflag & VM_NOSLEEP) === 0) {
          if (this.importFn === null) {
            // Without a source illumos steps the rotor and waits unless
            // that step frees room: decide it before changing anything.
            if (!this.rotorStepFits(size)) throw new WouldBlock(this);
          } else {
            this.journalFull();
          }
        }
        this.advance(ROTOR, this.link[(ROTOR << 3) | ANEXT]!);
        T = this.type;
        P = this.pos;
        vsp = this.link[(ROTOR << 3) | APREV]!;
        if (T[vsp] === VMEM_FREE && P[(vsp << 2) | END]! - P[(vsp << 2) | START]! >= size) break;
        if (this.importFn !== null || (vmflag & VM_NOSLEEP) !== 0) {
          this.xallocInner(size, this.quantum, 0, 0, 0, 0, vmflag & VM_KMFLAGS);
          return;
        }
        throw new WouldBlock(this);
      }
    }
    const addr = P[(vsp << 2) | START]!;
    ADDR[0]! = addr;
    vsp = this.segAlloc(vsp, size);
    this.advance(ROTOR, vsp);
    ADDR[0]! = addr;
  }

  /** Whether stepping the rotor past its successor would leave a free segment of `size` behind it. */
  private rotorStepFits(size: number): boolean {
    const T = this.type, P = this.pos;
    const next = this.link[(ROTOR << 3) | ANEXT]!, prev = this.link[(ROTOR << 3) | APREV]!;
    if (T[next] !== VMEM_FREE) return false;
    let avail = P[(next << 2) | END]! - P[(next << 2) | START]!;
    if (T[prev] === VMEM_FREE) avail += P[(prev << 2) | END]! - P[(prev << 2) | START]!;
    return avail >= size;
  }

  /** `vmem_canalloc`. */
  private canalloc(size: number): boolean {
    return (isPow2(size) ? this.firstList(highbit(size) - 1) : this.firstList(highbit(size))) >= 0;
  }

  /** `vmem_xalloc` after validation (`align` already defaulted); the address (0 on failure) is left in ADDR. */
  private xallocInner(
    size: number,
    align: number,
    phase: number,
    nocross: number,
    minaddr: number,
    maxaddr: number,
    vmflag: number,
  ): void {
    if (this.mtbf !== 0 && (vmflag & (VM_NOSLEEP | VM_PANIC)) === VM_NOSLEEP && this.mtbfHit()) {
      ADDR[0] = 0;
      return;
    }
    const q = this.quantum;
    // Numbers by type, not just by value: a parameter merged with a segment
    // bound would make the optimizer box every segment the search visits.
    const lo = +minaddr, hi = +maxaddr;
    let vbest = NIL;
    let addr = 0;
    let xvaddr = 0, xsize = 0;
    const pow2 = isPow2(size);
    for (;;) {
      if (this.nsegFree < MINFREE) this.populate();
      let flist: number;
      if (pow2) {
        flist = this.firstList(highbit(size) - 1);
      } else {
        let hb = highbit(size);
        if (this.firstList(hb) < 0 || (vmflag & (VM_BESTFIT | VM_FIRSTFIT)) !== 0) hb--;
        flist = this.firstList(hb);
      }
      const first = flist < 0 ? NIL : this.link[(flist << 3) | KNEXT]!;
      vbest = (this.gate & G_PLAIN) === 0
        ? this.xallocSearch(first, size, align, phase, nocross, lo, hi, vmflag)
        : this.xallocSearchPlain(first, size, align, phase, nocross, lo, hi, vmflag);
      addr = ADDR[0]!;
      if (vbest !== NIL) break;
      if (this.importFn !== null && nocross === 0 && minaddr === 0 && maxaddr === 0) {
        const src = this.source as Vmem;
        const aquantum = q > src.quantum ? q : src.quantum;
        let aphase = phase;
        if (align > aquantum) aphase = phase % aquantum !== 0 ? align - q : align - aquantum;
        const aneeded0 = Math.max(size + aphase, this.minImport);
        const asize = roundup(aneeded0, aquantum);
        let vaddr = 0;
        if (asize <= MAX_ADDR) vaddr = this.callImport(asize, vmflag & VM_KMFLAGS);
        if (this.nsegFree < MINFREE) this.populate();
        const aneeded = roundup(size + align - q, q);
        if (vaddr !== 0) {
          if (asize > aneeded && this.releaseFn !== null && this.canalloc(aneeded)) {
            // Room appeared while importing (a call back into this arena):
            // allocate from it and give the import back afterwards.
            xvaddr = vaddr;
            xsize = asize;
            continue;
          }
          vbest = this.spanCreate(vaddr, asize, 1);
          addr = phaseup(vaddr, align, phase);
          break;
        } else if (this.canalloc(aneeded)) {
          continue;
        }
      }
      if (vmflag & VM_ABORT) break;
      if (this.reapForRoom()) continue;
      if (vmflag & VM_NOSLEEP) break;
      throw new WouldBlock(this);
    }
    if (vbest !== NIL) {
      if (vmflag & VM_ENDALLOC) {
        addr += Math.floor((this.pos[(vbest << 2) | END]! - (addr + size)) / align) * align;
      }
      ADDR[0] = addr;
      this.segAlloc(vbest, size);
      if (xvaddr !== 0) (this.releaseFn as ReleaseFn)(this.source as Vmem, xvaddr, xsize);
      ADDR[0] = addr;
      return;
    }
    this.ctr[C_FAIL]!++;
    if (vmflag & VM_PANIC) {
      throw new KernelError(
        "ENOMEM",
        `arena '${this.name}' cannot satisfy mandatory allocation of ${size} (align ${align}, phase ${phase}, nocross ${nocross})`,
      );
    }
    ADDR[0] = 0;
  }

  /**
   * vmem_xalloc's search of the free lists from `vsp` on, as illumos
   * writes it (each P2 macro a division): the segment to allocate from (NIL:
   * none), its address left in ADDR. The general path, for arenas under
   * fault injection, and the plain one that xallocSearch is tested against.
   */
  private xallocSearchPlain(
    vsp: number,
    size: number,
    align: number,
    phase: number,
    nocross: number,
    lo: number,
    hi: number,
    vmflag: number,
  ): number {
    const P = this.pos, L = this.link;
    let search = 0, vbest = NIL, addr = 0;
    while (vsp !== NIL) {
      search++;
      if (vsp <= FL_END) {
        if (vbest !== NIL) break;
        const f = vsp === FL_END ? -1 : this.firstList(vsp);
        if (f < 0) break;
        vsp = L[(f << 3) | KNEXT]!;
        continue;
      }
      const vs = P[(vsp << 2) | START]!, ve = P[(vsp << 2) | END]!;
      if (ve - 1 < lo || (hi !== 0 && vs > hi - 1)) {
        vsp = L[(vsp << 3) | KNEXT]!;
        continue;
      }
      const start = vs > lo ? vs : lo;
      const end = hi !== 0 && hi < ve ? hi : ve;
      let taddr = phaseup(start, align, phase);
      if (
        nocross !== 0 && Math.floor(taddr / nocross) !== Math.floor((taddr + size - 1) / nocross)
      ) {
        // P2NPHASE(taddr, nocross), rounded up to align: to the next boundary plus the phase.
        taddr += roundup(Math.ceil(taddr / nocross) * nocross - taddr, align);
      }
      if (
        taddr - start + size > end - start ||
        (vbest !== NIL && ve - vs >= P[(vbest << 2) | END]! - P[(vbest << 2) | START]!)
      ) {
        vsp = L[(vsp << 3) | KNEXT]!;
        continue;
      }
      vbest = vsp;
      addr = taddr;
      if ((vmflag & VM_BESTFIT) === 0 || ve - vs === size) break;
      vsp = L[(vsp << 3) | KNEXT]!;
    }
    this.ctr[C_SEARCH]! += search;
    ADDR[0] = addr;
    return vbest;
  }

  /**
   * {@link xallocSearchPlain} for the written-out path: the same segments
   * visited and chosen, with each division by a power of two (align,
   * nocross) a multiplication by its exact reciprocal, and a segment whose
   * usable part is shorter than `size` passed over before any alignment
   * sum (illumos's limit tests are that test's special cases). An align
   * and a nocross of at most 2^30 go to {@link xallocSearchBits} instead.
   */
  private xallocSearch(
    vsp: number,
    size: number,
    align: number,
    phase: number,
    nocross: number,
    lo: number,
    hi: number,
    vmflag: number,
  ): number {
    if (align <= BITS_MAX && nocross <= BITS_MAX) {
      return this.xallocSearchBits(vsp, size, align, phase, nocross, lo, hi, vmflag);
    }
    const P = this.pos, L = this.link;
    const perAlign = 1 / align, perNocross = nocross === 0 ? 0 : 1 / nocross;
    const bestfit = (vmflag & VM_BESTFIT) !== 0;
    let search = 0, vbest = NIL, bestSize = 0, addr = 0;
    while (vsp !== NIL) {
      search++;
      if (vsp <= FL_END) {
        if (vbest !== NIL) break;
        const f = vsp === FL_END ? -1 : this.firstList(vsp);
        if (f < 0) break;
        vsp = L[(f << 3) | KNEXT]!;
        continue;
      }
      const vs = P[(vsp << 2) | START]!, ve = P[(vsp << 2) | END]!;
      const next = L[(vsp << 3) | KNEXT]!;
      // Math.max and min rather than a choice between a bound and a limit:
      // a small-integer limit merged with a float bound would make V8 box
      // every segment's bound. Without limits neither (Bun: 12% faster).
      const start = lo === 0 ? vs : Math.max(vs, lo);
      const end = hi === 0 ? ve : Math.min(ve, hi);
      if (end - start < size || (vbest !== NIL && ve - vs >= bestSize)) {
        vsp = next;
        continue;
      }
      let taddr = Math.ceil((start - phase) * perAlign) * align + phase;
      if (nocross !== 0) {
        // P2BOUNDARY: the block would reach the next nocross boundary
        // (wall); move it past, by P2NPHASE rounded up to align.
        const wall = Math.floor(taddr * perNocross) * nocross + nocross;
        if (taddr + size > wall) taddr += Math.ceil((wall - taddr) * perAlign) * align;
      }
      if (taddr + size > end) {
        vsp = next;
        continue;
      }
      vbest = vsp;
      bestSize = ve - vs;
      addr = taddr;
      if (!bestfit || bestSize === size) break;
      vsp = next;
    }
    this.ctr[C_SEARCH]! += search;
    ADDR[0] = addr;
    return vbest;
  }

  /**
   * {@link xallocSearch} for an align and a nocross of at most 2^30, the
   * usual case: where a block may start in a segment depends only on the
   * low 32 bits of the segment's start, so the alignment and the boundary
   * are found with integer masks (no rounding of floats) and only the
   * final comparison with the segment's length is made in full precision.
   * Its walk of the free lists is xallocSearch's, written again so that
   * each loop keeps its fit test inline: a walker shared through a test
   * function would cost a call for every segment looked at.
   */
  private xallocSearchBits(
    vsp: number,
    size: number,
    align: number,
    phase: number,
    nocross: number,
    lo: number,
    hi: number,
    vmflag: number,
  ): number {
    const P = this.pos, L = this.link;
    // The loop's constants as 32-bit integers, converted once rather than
    // at each segment. A request with a nocross has a size of at most
    // nocross (checkXalloc), so size32 is exact wherever it is used.
    const amask = (align - 1) | 0, nmask = (nocross - 1) | 0, ph = phase | 0;
    const nc = nocross | 0, size32 = nocross !== 0 ? size | 0 : 0;
    const limited = lo !== 0 || hi !== 0;
    const bestfit = (vmflag & VM_BESTFIT) !== 0;
    let search = 0, vbest = NIL, bestSize = 0, addr = 0;
    while (vsp !== NIL) {
      search++;
      if (vsp <= FL_END) {
        if (vbest !== NIL) break;
        const f = vsp === FL_END ? -1 : this.firstList(vsp);
        if (f < 0) break;
        vsp = L[(f << 3) | KNEXT]!;
        continue;
      }
      const vs = P[(vsp << 2) | START]!, ve = P[(vsp << 2) | END]!;
      const next = L[(vsp << 3) | KNEXT]!;
      let start = vs, end = ve;
      if (limited) {
        start = Math.max(vs, lo);
        end = hi === 0 ? ve : Math.min(ve, hi);
      }
      const room = end - start;
      if (room < size || (vbest !== NIL && ve - vs >= bestSize)) {
        vsp = next;
        continue;
      }
      // skip: from start to the first address at the phase, then past the
      // next nocross boundary if the block would reach it (both counted
      // modulo 2^32, which align and nocross divide).
      const low = start | 0;
      let skip = (ph - low) & amask;
      if (nc !== 0) {
        const off = (low + skip) & nmask;
        if (off + size32 > nc) skip += (nc - off + amask) & ~amask;
      }
      if (skip + size > room) {
        vsp = next;
        continue;
      }
      vbest = vsp;
      bestSize = ve - vs;
      addr = start + skip;
      if (!bestfit || bestSize === size) break;
      vsp = next;
    }
    this.ctr[C_SEARCH]! += search;
    ADDR[0] = addr;
    return vbest;
  }

  /** Calls the import function and checks what it returns. */
  private callImport(asize: number, vmflag: number): number {
    const vaddr = (this.importFn as ImportFn)(this.source as Vmem, asize, vmflag);
    if (vaddr === 0) return 0;
    if (
      typeof vaddr !== "number" || !Number.isInteger(vaddr) || vaddr < 0 ||
      vaddr % this.quantum !== 0 ||
      vaddr + asize > MAX_ADDR
    ) {
      throw new KernelError(
        "EINVAL",
        `import into arena '${this.name}' returned ${
          describe(vaddr)
        } for ${asize}: not a quantum-aligned span`,
      );
    }
    return vaddr;
  }

  /**
   * After a failed search and import: reaps the quantum caches of every arena
   * of the same kind (kmem_reap / kmem_reap_idspace) and says whether that
   * gave this arena more free space, in which case the search is retried.
   */
  private reapForRoom(): boolean {
    const arenas = this.gs.qcacheArenas;
    if (arenas.length === 0) return false;
    const ident = this.cflags & VMC_IDENTIFIER;
    const before = this.ctr[C_TOTAL]! - this.ctr[C_INUSE]!;
    for (const vmp of arenas.slice()) {
      if ((vmp.cflags & VMC_IDENTIFIER) === ident && (vmp.gate & L_DEAD) === 0) vmp.reapQcaches();
    }
    return this.ctr[C_TOTAL]! - this.ctr[C_INUSE]! > before;
  }

  /** Empties the depots of this arena's quantum caches. */
  private reapQcaches(): void {
    const qcs = this.qcache;
    if (qcs === null) return;
    let any = false;
    for (const qc of qcs) any ||= qc.reapable();
    if (!any) return;
    this.journalFull();
    for (const qc of qcs) qc.reap();
  }

  /**
   * `vmem_xfree` after argument checks: `vmem_hash_delete`, then coalescing
   * with the next and the previous segment, then the free list or the
   * source. The hash lookup and the free-list moves are written out here
   * (the steps of xfreePlain: hashDelete, freelistDelete, segDestroy and
   * freelistInsert): this is the hot path of every free.
   */
  private xfreeInner(size: number): void {
    const addr = ADDR[0]!;
    const P = this.pos, L = this.link, T = this.type, H = this.hashTable;
    let h = this.lastHash, vsp = this.lastSeg, hprev = NIL, steps = 0;
    // The segment instantFit allocated last, still at the head of its
    // bucket: found without hashing (a head takes no extra step either way).
    if (H[h] !== vsp || P[(vsp << 2) | START] !== addr) {
      // hashIndex(addr), then the chain walk of hashDelete.
      h = Math.imul((addr * this.invQuantum) >>> 0, 0x9e3779b1) >>> this.hashShift;
      vsp = H[h]!;
      while (vsp !== NIL && P[(vsp << 2) | START] !== addr) {
        steps++;
        hprev = vsp;
        vsp = L[(vsp << 3) | KNEXT]!;
      }
    }
    if (vsp === NIL || P[(vsp << 2) | END]! - addr !== size) this.badFree(vsp, addr, size);
    if (hprev === NIL) H[h] = L[(vsp << 3) | KNEXT]!;
    else L[(hprev << 3) | KNEXT] = L[(vsp << 3) | KNEXT]!;
    const c = this.ctr;
    if (steps !== 0) c[C_LOOKUP]! += steps;
    c[C_INUSE]! -= size;
    if (--this.hashCount < this.hashShrinkAt) this.hashRescale();
    // The free run's length, kept as it grows: without neighbours to merge
    // it is the rounded size, known before the segment is found, so the
    // free list it joins is too.
    let len = size <= TWO32
      ? Math.max((((size - 1) | this.qmask) >>> 0) + 1, this.quantum)
      : Math.ceil(size * this.invQuantum) * this.quantum;
    let end = addr + len;
    const vnext = L[(vsp << 3) | ANEXT]!;
    if (T[vnext] === VMEM_FREE) {
      // freelistDelete(vnext), then vmem_seg_destroy(vnext).
      const fn = L[(vnext << 3) | KNEXT]!, fp = L[(vnext << 3) | KPREV]!;
      if (fn <= FL_END && fp <= FL_END) {
        if (fp < 32) this.freemapLo ^= 1 << fp;
        else this.freemapHi ^= 1 << (fp - 32);
      }
      L[(fp << 3) | KNEXT] = fn;
      L[(fn << 3) | KPREV] = fp;
      end = P[(vnext << 2) | END]!;
      len = end - addr;
      const nn = L[(vnext << 3) | ANEXT]!;
      L[(vsp << 3) | ANEXT] = nn;
      L[(nn << 3) | APREV] = vsp;
      T[vnext] = 0;
      L[(vnext << 3) | KNEXT] = this.segFree;
      this.segFree = vnext;
      this.nsegFree++;
    }
    const vprev = L[(vsp << 3) | APREV]!;
    if (T[vprev] === VMEM_FREE) {
      // freelistDelete(vprev), then vmem_seg_destroy(vsp).
      const fn = L[(vprev << 3) | KNEXT]!, fp = L[(vprev << 3) | KPREV]!;
      if (fn <= FL_END && fp <= FL_END) {
        if (fp < 32) this.freemapLo ^= 1 << fp;
        else this.freemapHi ^= 1 << (fp - 32);
      }
      L[(fp << 3) | KNEXT] = fn;
      L[(fn << 3) | KPREV] = fp;
      const nn = L[(vsp << 3) | ANEXT]!;
      L[(vprev << 3) | ANEXT] = nn;
      L[(nn << 3) | APREV] = vprev;
      T[vsp] = 0;
      L[(vsp << 3) | KNEXT] = this.segFree;
      this.segFree = vsp;
      this.nsegFree++;
      vsp = vprev;
      len = end - P[(vsp << 2) | START]!;
    }
    P[(vsp << 2) | END] = end;
    const before = L[(vsp << 3) | APREV]!;
    if (
      T[before] === VMEM_SPAN && this.imp[before] !== 0 && this.releaseFn !== null &&
      T[L[(vsp << 3) | ANEXT]!] === VMEM_SPAN
    ) {
      const a = P[(vsp << 2) | START]!;
      this.spanDestroy(vsp);
      this.releaseFn(this.source as Vmem, a, end - a);
      return;
    }
    // freelistInsert(vsp).
    const i = highbit(len) - 1;
    T[vsp] = VMEM_FREE;
    if (i < 32) this.freemapLo |= 1 << i;
    else this.freemapHi |= 1 << (i - 32);
    const n = L[(i << 3) | KNEXT]!;
    L[(vsp << 3) | KNEXT] = n;
    L[(vsp << 3) | KPREV] = i;
    L[(i << 3) | KNEXT] = vsp;
    L[(n << 3) | KPREV] = vsp;
    if (this.waiters !== null) this.broadcast();
  }

  /**
   * `vmem_xfree` of the segment at ADDR: written out (xfreeInner) when the
   * gate is open, else as illumos writes it (xfreePlain).
   */
  private xfreeAt(size: number): void {
    if (this.gate === 0) this.xfreeInner(size);
    else this.xfreePlain(size);
  }

  /**
   * `vmem_xfree` after argument checks, step by step as illumos has it
   * (vmem_hash_delete, coalescing through freelistDelete and segDestroy,
   * then the source or freelistInsert): the general path, for arenas under
   * fault injection and frees while a request sleeps or waits, and the
   * plain one that xfreeInner is tested against.
   */
  private xfreePlain(size: number): void {
    let vsp = this.hashDelete(ADDR[0]!, size);
    const P = this.pos, L = this.link, T = this.type;
    P[(vsp << 2) | END] = roundup(P[(vsp << 2) | END]!, this.quantum);
    const vnext = L[(vsp << 3) | ANEXT]!;
    if (T[vnext] === VMEM_FREE) {
      this.freelistDelete(vnext);
      P[(vsp << 2) | END] = P[(vnext << 2) | END]!;
      this.segDestroy(vnext);
    }
    const vprev = L[(vsp << 3) | APREV]!;
    if (T[vprev] === VMEM_FREE) {
      this.freelistDelete(vprev);
      P[(vprev << 2) | END] = P[(vsp << 2) | END]!;
      this.segDestroy(vsp);
      vsp = vprev;
    }
    const before = L[(vsp << 3) | APREV]!;
    if (
      this.imp[before] !== 0 && this.releaseFn !== null && T[before] === VMEM_SPAN &&
      T[L[(vsp << 3) | ANEXT]!] === VMEM_SPAN
    ) {
      const a = P[(vsp << 2) | START]!, s = P[(vsp << 2) | END]! - a;
      this.spanDestroy(vsp);
      this.releaseFn(this.source as Vmem, a, s);
    } else {
      this.freelistInsert(vsp);
    }
  }

  /** Refuses a free of an address not allocated or with the wrong size. */
  private badFree(vsp: number, addr: number, size: number): never {
    checkFreeArgs(addr, size);
    if (vsp === NIL) {
      throw new KernelError(
        "BADFREE",
        `free of ${describe(addr)} to arena '${this.name}': not allocated`,
      );
    }
    throw new KernelError(
      "BADFREE",
      `free of ${describe(addr)} to arena '${this.name}': wrong size ${describe(size)} (expect ${
        describe(this.pos[(vsp << 2) | END]! - this.pos[(vsp << 2) | START]!)
      })`,
    );
  }

  /** `vmem_advance`: moves `walker` after `afterme` (or off the list) and mends what it separated. */
  private advance(walker: number, afterme: number): void {
    const T = this.type, P = this.pos;
    const vprev = this.link[(walker << 3) | APREV]!, vnext = this.link[(walker << 3) | ANEXT]!;
    this.link[(vprev << 3) | ANEXT] = vnext;
    this.link[(vnext << 3) | APREV] = vprev;
    if (afterme !== NIL) this.ainsert(afterme, walker);
    let vsp = NIL;
    if (T[vprev] === VMEM_FREE) {
      if (T[vnext] === VMEM_FREE) {
        this.freelistDelete(vnext);
        this.freelistDelete(vprev);
        P[(vprev << 2) | END] = P[(vnext << 2) | END]!;
        this.freelistInsert(vprev);
        this.segDestroy(vnext);
      }
      vsp = vprev;
    } else if (T[vnext] === VMEM_FREE) {
      vsp = vnext;
    }
    if (vsp !== NIL) {
      const before = this.link[(vsp << 3) | APREV]!;
      if (
        this.imp[before] !== 0 && this.releaseFn !== null && T[before] === VMEM_SPAN &&
        T[this.link[(vsp << 3) | ANEXT]!] === VMEM_SPAN
      ) {
        const a = P[(vsp << 2) | START]!, s = P[(vsp << 2) | END]! - a;
        this.freelistDelete(vsp);
        this.spanDestroy(vsp);
        this.releaseFn(this.source as Vmem, a, s);
      }
    }
  }

  // ---- Internals: segments, lists, spans ----

  /** `vmem_seg_alloc`: carves `[ADDR, ADDR + size)` out of free segment `vsp`. */
  private segAlloc(vsp: number, size: number): number {
    const addr = ADDR[0]!;
    const P = this.pos;
    const vsStart = P[(vsp << 2) | START]!, vsEnd = P[(vsp << 2) | END]!;
    const vsSize = vsEnd - vsStart;
    const realsize = Math.ceil(size * this.invQuantum) * this.quantum;
    const addrEnd = addr + realsize;
    if (addr === vsStart && vsSize !== realsize && highbit(vsSize) === highbit(vsSize - realsize)) {
      // The remainder stays on the same list: move the segment's start and
      // put the new segment before it.
      P[(vsp << 2) | START] = addrEnd;
      const L = this.link;
      const n = this.segFree;
      this.segFree = L[(n << 3) | KNEXT]!;
      this.nsegFree--;
      P[(n << 2) | START] = addr;
      P[(n << 2) | END] = addr + size;
      this.imp[n] = 0;
      const prev = L[(vsp << 3) | APREV]!;
      L[(n << 3) | ANEXT] = vsp;
      L[(n << 3) | APREV] = prev;
      L[(prev << 3) | ANEXT] = n;
      L[(vsp << 3) | APREV] = n;
      this.hashInsert(n);
      return n;
    }
    this.freelistDelete(vsp);
    if (vsEnd !== addrEnd) this.freelistInsert(this.segCreate(vsp, addrEnd, vsEnd));
    if (vsStart !== addr) {
      this.freelistInsert(this.segCreate(this.link[(vsp << 3) | APREV]!, vsStart, addr));
    }
    P[(vsp << 2) | START] = addr;
    P[(vsp << 2) | END] = addr + size;
    this.hashInsert(vsp);
    return vsp;
  }

  /** `vmem_span_create`: returns the free segment covering the new span. */
  private spanCreate(vaddr: number, size: number, imported: number): number {
    const end = vaddr + size;
    const span = this.segCreate(this.link[(SEG0 << 3) | APREV]!, vaddr, end);
    this.type[span] = VMEM_SPAN;
    this.imp[span] = imported;
    const kp = this.link[(SEG0 << 3) | KPREV]!;
    this.link[(span << 3) | KNEXT] = SEG0;
    this.link[(span << 3) | KPREV] = kp;
    this.link[(kp << 3) | KNEXT] = span;
    this.link[(SEG0 << 3) | KPREV] = span;
    const seg = this.segCreate(span, vaddr, end);
    this.freelistInsert(seg);
    if (imported) this.ctr[C_IMPORT]! += size;
    this.ctr[C_TOTAL]! += size;
    return seg;
  }

  /** `vmem_span_destroy`: removes the span whose only segment is `vsp`. */
  private spanDestroy(vsp: number): void {
    const span = this.link[(vsp << 3) | APREV]!;
    const size = this.pos[(vsp << 2) | END]! - this.pos[(vsp << 2) | START]!;
    if (this.imp[span]) this.ctr[C_IMPORT]! -= size;
    this.ctr[C_TOTAL]! -= size;
    const kp = this.link[(span << 3) | KPREV]!, kn = this.link[(span << 3) | KNEXT]!;
    this.link[(kp << 3) | KNEXT] = kn;
    this.link[(kn << 3) | KPREV] = kp;
    this.segDestroy(vsp);
    this.segDestroy(span);
  }

  /** A new segment `[start, end)` placed after `prev` in the arena list. */
  private segCreate(prev: number, start: number, end: number): number {
    const id = this.getseg();
    this.pos[(id << 2) | START] = start;
    this.pos[(id << 2) | END] = end;
    this.type[id] = 0;
    this.imp[id] = 0;
    this.ainsert(prev, id);
    return id;
  }

  /** Unlinks segment `id` from the arena list and returns it to the pool. */
  private segDestroy(id: number): void {
    const p = this.link[(id << 3) | APREV]!, n = this.link[(id << 3) | ANEXT]!;
    this.link[(p << 3) | ANEXT] = n;
    this.link[(n << 3) | APREV] = p;
    this.type[id] = 0;
    this.putseg(id);
  }

  /** Links segment `id` into the arena list after `prev`. */
  private ainsert(prev: number, id: number): void {
    const n = this.link[(prev << 3) | ANEXT]!;
    this.link[(id << 3) | ANEXT] = n;
    this.link[(id << 3) | APREV] = prev;
    this.link[(prev << 3) | ANEXT] = id;
    this.link[(n << 3) | APREV] = id;
  }

  /** Takes a segment structure from the pool (vmem_getseg). */
  private getseg(): number {
    const id = this.segFree;
    if (id === NIL) {
      throw new KernelError("CORRUPT", `arena '${this.name}': segment pool exhausted`);
    }
    this.segFree = this.link[(id << 3) | KNEXT]!;
    this.nsegFree--;
    return id;
  }

  /** Returns a segment structure to the pool (vmem_putseg). */
  private putseg(id: number): void {
    this.link[(id << 3) | KNEXT] = this.segFree;
    this.segFree = id;
    this.nsegFree++;
  }

  /** `vmem_populate`: keeps MINFREE spare segment structures. */
  private populate(): void {
    if (this.nsegFree >= MINFREE) return;
    this.grow(this.cap * 2);
    this.ctr[C_POPULATE]!++;
  }

  /** Grows the segment arrays to hold `cap` segments (vmem_populate). */
  private grow(cap: number): void {
    const old = this.cap;
    const rows = new ArrayBuffer(32 * cap);
    new Uint8Array(rows).set(new Uint8Array(this.pos.buffer));
    const pos = new Float64Array(rows);
    const link = new Int32Array(rows);
    const type = new Uint8Array(cap);
    type.set(this.type);
    const imp = new Uint8Array(cap);
    imp.set(this.imp);
    this.pos = pos;
    this.link = link;
    this.type = type;
    this.imp = imp;
    this.cap = cap;
    for (let id = cap - 1; id >= Math.max(old, FIRST_SEG); id--) this.putseg(id);
  }

  /** Sets up the free-list heads, linked as markers in one chain. */
  private initLists(): void {
    for (let i = 0; i <= FL_END; i++) {
      this.pos[(i << 2) | START] = 0;
      this.pos[(i << 2) | END] = i < NLISTS ? 2 ** i : 0;
      this.link[(i << 3) | KNEXT] = i < FL_END ? i + 1 : NIL;
      this.link[(i << 3) | KPREV] = i - 1;
    }
    this.link[(SEG0 << 3) | ANEXT] = this.link[(SEG0 << 3) | APREV] = SEG0;
    this.link[(SEG0 << 3) | KNEXT] = this.link[(SEG0 << 3) | KPREV] = SEG0;
    this.type[SEG0] = VMEM_SPAN;
    this.type[ROTOR] = VMEM_ROTOR;
    this.ainsert(SEG0, ROTOR);
  }

  /** True when free list `i` is non-empty (its bit in the freemap). */
  private listBit(i: number): boolean {
    return i < 32 ? (this.freemapLo & (1 << i)) !== 0 : (this.freemapHi & (1 << (i - 32))) !== 0;
  }

  /** `lowbit(P2ALIGN(freemap, 2^k)) - 1`: the first non-empty list at or above k, or -1. */
  private firstList(k: number): number {
    if (k < 32) {
      const m = this.freemapLo & (-1 << k);
      if (m !== 0) return 31 - Math.clz32(m & -m);
      k = 32;
    }
    if (k >= NLISTS) return -1;
    const m = this.freemapHi & (-1 << (k - 32));
    return m !== 0 ? 63 - Math.clz32(m & -m) : -1;
  }

  /** `vmem_freelist_insert`: at the head of the list of its size; wakes waiters. */
  private freelistInsert(vsp: number): void {
    const i = highbit(this.pos[(vsp << 2) | END]! - this.pos[(vsp << 2) | START]!) - 1;
    this.type[vsp] = VMEM_FREE;
    if (i < 32) this.freemapLo |= 1 << i;
    else this.freemapHi |= 1 << (i - 32);
    const L = this.link;
    const n = L[(i << 3) | KNEXT]!;
    L[(vsp << 3) | KNEXT] = n;
    this.link[(vsp << 3) | KPREV] = i;
    L[(i << 3) | KNEXT] = vsp;
    this.link[(n << 3) | KPREV] = vsp;
    if (this.waiters !== null) this.broadcast();
  }

  /** `vmem_freelist_delete`. */
  private freelistDelete(vsp: number): void {
    const n = this.link[(vsp << 3) | KNEXT]!, p = this.link[(vsp << 3) | KPREV]!;
    if (n <= FL_END && p <= FL_END) {
      if (p < 32) this.freemapLo ^= 1 << p;
      else this.freemapHi ^= 1 << (p - 32);
    }
    this.link[(p << 3) | KNEXT] = n;
    this.link[(n << 3) | KPREV] = p;
  }

  // ---- Internals: the allocated-segment hash ----

  /**
   * The hash bucket of an allocated segment starting at `addr`: Fibonacci
   * hashing of the low 32 bits of `addr` in quanta (addresses are quantum
   * multiples, so the product is exact and `>>> 0` takes it modulo 2^32).
   */
  private hashIndex(addr: number): number {
    return Math.imul((addr * this.invQuantum) >>> 0, 0x9e3779b1) >>> this.hashShift;
  }

  /** Makes segment `vsp` allocated: into the hash, counted in use. */
  private hashInsert(vsp: number): void {
    this.type[vsp] = VMEM_ALLOC;
    const P = this.pos;
    const start = P[(vsp << 2) | START]!;
    const h = this.hashIndex(start);
    const H = this.hashTable;
    this.link[(vsp << 3) | KNEXT] = H[h]!;
    H[h] = vsp;
    const c = this.ctr;
    c[C_ALLOC]!++;
    c[C_INUSE]! += P[(vsp << 2) | END]! - start;
    if (++this.hashCount >= this.hashGrowAt) this.hashRescale();
  }

  /**
   * `vmem_hash_delete`: takes the allocated segment at `addr` out of the
   * hash and counts it free; refuses (BADFREE, nothing changed) an address
   * not allocated or a size that differs.
   */
  private hashDelete(addr: number, size: number): number {
    const h = this.hashIndex(addr);
    const H = this.hashTable, P = this.pos, L = this.link;
    let prev = NIL, steps = 0;
    let vsp = H[h]!;
    while (vsp !== NIL && P[(vsp << 2) | START] !== addr) {
      steps++;
      prev = vsp;
      vsp = L[(vsp << 3) | KNEXT]!;
    }
    if (vsp === NIL || P[(vsp << 2) | END]! - addr !== size) this.badFree(vsp, addr, size);
    if (prev === NIL) H[h] = L[(vsp << 3) | KNEXT]!;
    else L[(prev << 3) | KNEXT] = L[(vsp << 3) | KNEXT]!;
    const c = this.ctr;
    if (steps !== 0) c[C_LOOKUP]! += steps;
    c[C_INUSE]! -= size;
    if (--this.hashCount < this.hashShrinkAt) this.hashRescale();
    return vsp;
  }

  /**
   * The allocated segment starting at `addr`, or NIL (for check(); the free
   * paths walk the chain themselves).
   */
  private hashFind(addr: number): number {
    const P = this.pos, L = this.link;
    let s = this.hashTable[this.hashIndex(addr)]!;
    while (s !== NIL && P[(s << 2) | START] !== addr) s = L[(s << 3) | KNEXT]!;
    return s;
  }

  /**
   * `vmem_hash_rescale`, resized by factors of 4 or more as illumos does,
   * but to about two buckets per allocated segment where illumos has one:
   * a free's chain walk visits segments at random (cache misses), and with
   * illumos's sizing vmem-churn ran 14% (Deno) and 12% (Bun) slower. Which
   * bucket holds a segment decides nothing but the lookup counter.
   */
  private hashRescale(): void {
    const nseg = this.hashCount;
    const newSize = Math.max(HASH_INITIAL, 2 ** (highbit(3 * nseg + 4) - 1));
    const oldSize = this.hashTable.length;
    if (oldSize / 2 <= newSize && newSize <= oldSize * 2) {
      this.hashThresholds();
      return;
    }
    const old = this.hashTable;
    this.hashTable = new Int32Array(newSize).fill(NIL);
    this.hashShift = 32 - Math.log2(newSize);
    for (let h = 0; h < oldSize; h++) {
      let s = old[h]!;
      while (s !== NIL) {
        const next = this.link[(s << 3) | KNEXT]!;
        const b = this.hashIndex(this.pos[(s << 2) | START]!);
        this.link[(s << 3) | KNEXT] = this.hashTable[b]!;
        this.hashTable[b] = s;
        s = next;
      }
    }
    this.hashThresholds();
  }

  /** The counts at which the hash table grows or shrinks. */
  private hashThresholds(): void {
    const size = this.hashTable.length;
    this.hashGrowAt = Math.ceil((4 * size - 4) / 3);
    this.hashShrinkAt = size >= 64 ? (size / 2 - 4) / 3 : -1;
  }

  // ---- Internals: whole-state copies (journal) ----

  /** A copy of the whole arena state, to undo a sleeping request. */
  private saveState(): VmemState {
    return {
      rows: this.pos.buffer.slice(0),
      type: this.type.slice(),
      imp: this.imp.slice(),
      hashTable: this.hashTable.slice(),
      ctr: this.ctr.slice(),
      scalars: [
        this.cap,
        this.segFree,
        this.nsegFree,
        this.freemapLo,
        this.freemapHi,
        this.hashShift,
        this.hashCount,
        this.hashGrowAt,
        this.hashShrinkAt,
      ],
      qcaches: this.qcache === null ? [] : this.qcache.map((q) => q.saveState()),
    };
  }

  /** Puts back a state saved by saveState. */
  private restoreState(st: VmemState): void {
    this.pos = new Float64Array(st.rows);
    this.link = new Int32Array(st.rows);
    this.type = st.type;
    this.imp = st.imp;
    this.hashTable = st.hashTable;
    this.ctr.set(st.ctr);
    const s = st.scalars;
    this.cap = s[0]!;
    this.segFree = s[1]!;
    this.nsegFree = s[2]!;
    this.freemapLo = s[3]!;
    this.freemapHi = s[4]!;
    this.hashShift = s[5]!;
    this.hashCount = s[6]!;
    this.hashGrowAt = s[7]!;
    this.hashShrinkAt = s[8]!;
    if (this.qcache !== null) this.qcache.forEach((q, i) => q.restoreState(st.qcaches[i]!));
  }

  /** Starts the journal of a sleeping request made to `vmp`. */
  private static beginJournal(vmp: Vmem): void {
    const g = vmp.gs;
    g.epoch = ++g.seq;
    g.full = false;
    const qa = g.qcacheArenas;
    for (let i = 0; i < qa.length; i++) qa[i]!.gate |= G_JOURNAL;
    vmp.journal();
  }

  /** Ends a sleeping request of group `g` that succeeded. */
  private static commitJournal(g: GroupState): void {
    const list = g.journaled;
    for (let i = 0; i < list.length; i++) list[i]!.jState = null;
    list.length = 0;
    Vmem.endJournal(g);
  }

  /** Ends a refused sleeping request of group `g`: every arena it touched goes back as it was. */
  private static rollbackJournal(g: GroupState): void {
    const list = g.journaled;
    for (let i = list.length - 1; i >= 0; i--) {
      const vmp = list[i]!;
      if (vmp.jState !== null) vmp.restoreState(vmp.jState);
      vmp.ctr.set(vmp.jCtr);
      vmp.jState = null;
    }
    list.length = 0;
    Vmem.endJournal(g);
  }

  /** No sleeping request of group `g` runs any more: its quantum-cache fast paths open again. */
  private static endJournal(g: GroupState): void {
    g.epoch = 0;
    g.full = false;
    const qa = g.qcacheArenas;
    for (let i = 0; i < qa.length; i++) qa[i]!.gate &= ~G_JOURNAL;
  }
}

// ---- Module helpers ----

/** The EINVAL of a refused xalloc (its message is built only when one is thrown). */
function badXalloc(
  size: number,
  align: number,
  phase: number,
  nocross: number,
  why: string,
): KernelError {
  return new KernelError(
    "EINVAL",
    `xalloc(size ${size}, align ${align}, phase ${phase}, nocross ${nocross}): ${why}`,
  );
}

/** Refuses a free's address or size unless each is an integer in [1, 2^53 - 1], whatever its type. */
function checkFreeArgs(addr: number, size: number): void {
  if (
    !(Number.isInteger(addr) && addr >= 1 && addr <= MAX_ADDR && Number.isInteger(size) &&
      size >= 1 && size <= MAX_ADDR)
  ) throw badFreeArgs(addr, size);
}

/** True when `vmflag` is a number holding only allocation flags (false for any other type). */
function validFlags(vmflag: number): boolean {
  return typeof vmflag === "number" && (vmflag & ~ALLOC_FLAGS) === 0 && (vmflag | 0) === vmflag;
}

/** The refusal of {@link checkFreeArgs}: the first of `addr` and `size` that is bad. */
function badFreeArgs(addr: unknown, size: unknown): KernelError {
  const addrOk = Number.isInteger(addr) && (addr as number) >= 1 && (addr as number) <= MAX_ADDR;
  return new KernelError(
    "EINVAL",
    `${addrOk ? "size" : "addr"} must be an integer in [1, 2^53 - 1], got ${
      describe(addrOk ? size : addr)
    }`,
  );
}

function badSize(size: unknown): KernelError {
  return new KernelError(
    "EINVAL",
    `size must be an integer in [1, 2^53 - 1], got ${describe(size)}`,
  );
}

function badFlags(vmflag: unknown): KernelError {
  return new KernelError("EINVAL", `unknown or invalid allocation flags ${describe(vmflag)}`);
}

function cancelled(vmp: Vmem): KernelError {
  return new KernelError("ECANCELED", `wait for arena '${vmp.name}' cancelled`);
}
