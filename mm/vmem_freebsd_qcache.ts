/**
 * Quantum caches of FreeBSD's vmem: the UMA cache zones that `qc_init` puts
 * in front of an arena, one for each multiple of the quantum up to
 * `qcache_max`, modelled on UMA as FreeBSD 12 has it, with one CPU.
 *
 * Theory. A zone hands out items of one size. It holds them in buckets:
 * stacks of at most `bucketSize` items, the size UMA's `bucket_select` picks
 * for the item size (253 items for 64 bytes or less, down to 1 for 4 KiB or
 * more). The CPU owns two buckets, one it allocates from and one it frees
 * into; the zone keeps a list of buckets that hold items (newest at the
 * head) and a store of empty buckets (UMA keeps those in its bucket zones).
 *
 * - Allocation pops the alloc bucket. When that is empty it trades places
 *   with the free bucket if the free bucket holds items; otherwise the empty
 *   bucket goes to the store and the head of the list takes its place. With
 *   the list empty too, a bucket from the store is filled from the arena
 *   (`qc_import`: as many items as it holds, stopping at the first that
 *   fails) and becomes the alloc bucket. A fill that gets nothing is followed
 *   by an import of a single item, handed out directly; when that fails too,
 *   the zone fails.
 * - A free pushes onto the alloc bucket while it has room (so the item is
 *   the next one handed out), else onto the free bucket. When both are full,
 *   the free bucket goes to the head of the list and an empty bucket from
 *   the store takes its place.
 * - `drain` (UMA's `zone_drain`, which a failing vmem request calls through
 *   `qc_drain`) gives the items of every bucket on the list back to the arena
 *   (`qc_release`), head first, each bucket's items in order; the CPU's
 *   buckets keep theirs. A drain that a release of the same zone's drain sets
 *   off does nothing. `purge` (`cache_drain`, as `uma_zdestroy` runs it)
 *   first gives back the alloc bucket's items, then the free bucket's, then
 *   drains; the zone stays usable.
 *
 * What several CPUs bring to UMA is left out: lock contention growing the
 * bucket size, working-set trimming, item limits, and buckets that cannot be
 * had under memory pressure (a bucket is always there to take).
 *
 * Data: items are non-negative integers the arena chooses (its tag numbers);
 * the zone only stores them. A bucket is an Int32Array of `bucketSize`
 * items; its count is kept beside it (the CPU's two in fields, the list's in
 * a parallel array). "No bucket" is one shared empty array, so a test for
 * room in a bucket is a test of its length.
 *
 * Invariants (see {@link QcacheZone.check}): counts stay within their
 * buckets; every bucket on the list holds items; and items are conserved:
 * imported + freed = handed out + released + cached.
 *
 * Cost: allocation and free are O(1) away from the arena; a fill costs one
 * arena allocation per item, a drain one arena free per item.
 *
 * @module
 */

import { KernelError } from "./errors.ts";

/** What a zone needs from its arena: items imported and released in batches. */
export interface ZoneSource<C> {
  /**
   * `qc_import`: up to `count` items of `zone.size` into `store[0..count)`,
   * allocated with `flags`, stopping at the first that fails. Returns how
   * many it imported. `ctx` is what the zone's caller passed.
   */
  importItems(zone: QcacheZone<C>, store: Int32Array, count: number, flags: number, ctx: C): number;
  /** `qc_release`: gives the items `store[0..count)` back to the arena. */
  releaseItems(zone: QcacheZone<C>, store: Int32Array, count: number, ctx: C): void;
}

/** Counters and contents of one quantum cache of FreeBSD's flavor (a UMA zone). */
export interface FreeBSDQcacheStats {
  /** Zone name, as `qc_init` makes it: `<arena>-<size>`. */
  name: string;
  /** Size of every item. */
  size: number;
  /** Items a bucket holds. */
  bucketSize: number;
  /** Items handed out. */
  allocs: number;
  /** Items taken back. */
  frees: number;
  /** Allocations the zone could not serve (the arena then tries itself). */
  fails: number;
  /** Items imported from the arena. */
  imports: number;
  /** Items given back to the arena. */
  releases: number;
  /** Items in the zone's buckets, ready to be handed out. */
  cached: number;
  /** Items in the CPU's alloc bucket. */
  allocBucket: number;
  /** Items in the CPU's free bucket. */
  freeBucket: number;
  /** Buckets on the zone's list (what a drain gives back). */
  buckets: number;
  /** Empty buckets kept for reuse. */
  emptyBuckets: number;
}

/** A zone's state, copied whole (to undo a refused sleeping request). */
export interface QcacheZoneState {
  /** The CPU's buckets and their counts. */
  readonly cpu: readonly [Int32Array, number, Int32Array, number];
  /** The list's buckets, head last, and their counts. */
  readonly list: readonly Int32Array[];
  /** Counts of the list's buckets. */
  readonly counts: readonly number[];
  /** Empty buckets in the store. */
  readonly empty: number;
  /** allocs, frees, fails, imports, releases. */
  readonly counters: readonly [number, number, number, number, number];
}

/** The shared "no bucket": no room and no items. */
const NO_BUCKET = new Int32Array(0);

/**
 * UMA's bucket zones of FreeBSD 12 on a 64-bit machine: a bucket of `n`
 * pointers, three of which its header takes, serves items up to `maxsize`
 * bytes.
 */
const BUCKET_ZONES: readonly (readonly [n: number, maxsize: number])[] = [
  [4, 4096],
  [6, 3072],
  [8, 2048],
  [12, 1536],
  [16, 1024],
  [32, 512],
  [64, 256],
  [128, 128],
  [256, 64],
];
const BUCKET_HEADER = 3;

/**
 * UMA's `bucket_select`: the items per bucket of a zone of `size`-byte
 * items, the largest bucket whose size limit admits them; above the first
 * limit, as many as that bucket's bytes hold, and at least one.
 */
export function bucketSelect(size: number): number {
  const [n0, max0] = BUCKET_ZONES[0]!;
  if (size > max0) return Math.max(Math.floor((max0 * (n0 - BUCKET_HEADER)) / size), 1);
  let i = 0;
  while (i < BUCKET_ZONES.length && BUCKET_ZONES[i]![1] >= size) i++;
  return BUCKET_ZONES[i - 1]![0] - BUCKET_HEADER;
}

/** One quantum cache: a UMA cache zone with one CPU's buckets. */
export class QcacheZone<C> {
  // The fields the arena's inlined pop and push touch come first (as in
  // vmem_qcache.ts: JavaScriptCore keeps only an object's first properties
  // inline).

  /** @internal Items in the alloc bucket. */
  allocCount = 0;
  /** @internal The CPU's alloc bucket. */
  allocBucket: Int32Array = NO_BUCKET;
  /** @internal Items handed out (the arena's inlined pop counts too). */
  nAlloc = 0;
  /** @internal Items taken back (the arena's inlined push counts too). */
  nFree = 0;
  private freeCount = 0;
  private freeBucket: Int32Array = NO_BUCKET;

  /** Zone name. */
  readonly name: string;
  /** Size of every item. */
  readonly size: number;
  /** Items a bucket holds. */
  readonly bucketSize: number;
  private readonly src: ZoneSource<C>;
  /** The list: buckets that hold items, the head last. */
  private list: Int32Array[] = [];
  private counts: number[] = [];
  /** Empty buckets. */
  private readonly store: Int32Array[] = [];
  private nFail = 0;
  private nImport = 0;
  private nRelease = 0;
  private draining = false;

  /** A zone called `name` of `size`-byte items taken from and given back to `src`. */
  constructor(name: string, size: number, src: ZoneSource<C>) {
    this.name = name;
    this.size = size;
    this.bucketSize = bucketSelect(size);
    this.src = src;
  }

  /** `uma_zalloc` with `flags` (which must not sleep): an item, or -1. */
  alloc(flags: number, ctx: C): number {
    for (;;) {
      const n = this.allocCount;
      if (n > 0) {
        this.allocCount = n - 1;
        this.nAlloc++;
        return this.allocBucket[n - 1]!;
      }
      if (this.freeCount > 0) {
        const b = this.allocBucket;
        this.allocBucket = this.freeBucket;
        this.allocCount = this.freeCount;
        this.freeBucket = b;
        this.freeCount = 0;
        continue;
      }
      if (this.allocBucket !== NO_BUCKET) {
        this.store.push(this.allocBucket);
        this.allocBucket = NO_BUCKET;
      }
      if (this.list.length > 0) {
        this.allocBucket = this.list.pop()!;
        this.allocCount = this.counts.pop()!;
        continue;
      }
      // The bucket being filled belongs to no one until the fill ends: the
      // arena may drain this zone, or allocate from it, meanwhile.
      const b = this.takeEmpty();
      const got = this.src.importItems(this, b, this.bucketSize, flags, ctx);
      this.nImport += got;
      if (got > 0) {
        if (this.allocBucket === NO_BUCKET) {
          this.allocBucket = b;
          this.allocCount = got;
        } else {
          this.pushList(b, got);
        }
        continue;
      }
      this.store.push(b);
      const one = new Int32Array(1);
      if (this.src.importItems(this, one, 1, flags, ctx) === 1) {
        this.nImport++;
        this.nAlloc++;
        return one[0]!;
      }
      this.nFail++;
      return -1;
    }
  }

  /** `uma_zfree`: takes `item` back. */
  free(item: number): void {
    for (;;) {
      if (this.allocCount < this.allocBucket.length) {
        this.allocBucket[this.allocCount++] = item;
        this.nFree++;
        return;
      }
      if (this.freeCount < this.freeBucket.length) {
        this.freeBucket[this.freeCount++] = item;
        this.nFree++;
        return;
      }
      if (this.freeBucket !== NO_BUCKET) this.pushList(this.freeBucket, this.freeCount);
      this.freeBucket = this.takeEmpty();
      this.freeCount = 0;
    }
  }

  /** True when a drain would give items back. */
  get drainable(): boolean {
    return this.list.length > 0;
  }

  /** `zone_drain`: gives back the items of the buckets on the list. */
  drain(ctx: C): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.list.length > 0) this.release(this.list.pop()!, this.counts.pop()!, ctx);
    } finally {
      this.draining = false;
    }
  }

  /** `cache_drain`: gives back the items of the CPU's buckets, then drains. */
  purge(ctx: C): void {
    const a = this.allocBucket, an = this.allocCount;
    const f = this.freeBucket, fn = this.freeCount;
    this.allocBucket = this.freeBucket = NO_BUCKET;
    this.allocCount = this.freeCount = 0;
    if (a !== NO_BUCKET) this.release(a, an, ctx);
    if (f !== NO_BUCKET) this.release(f, fn, ctx);
    this.drain(ctx);
  }

  /** Calls `fn` with every item the zone holds. */
  forEachItem(fn: (item: number) => void): void {
    for (let i = 0; i < this.allocCount; i++) fn(this.allocBucket[i]!);
    for (let i = 0; i < this.freeCount; i++) fn(this.freeBucket[i]!);
    for (let k = 0; k < this.list.length; k++) {
      for (let i = 0; i < this.counts[k]!; i++) fn(this.list[k]![i]!);
    }
  }

  /** Items the zone holds. */
  get cached(): number {
    let n = this.allocCount + this.freeCount;
    for (const c of this.counts) n += c;
    return n;
  }

  /** Counters and contents. */
  stats(): FreeBSDQcacheStats {
    return {
      name: this.name,
      size: this.size,
      bucketSize: this.bucketSize,
      allocs: this.nAlloc,
      frees: this.nFree,
      fails: this.nFail,
      imports: this.nImport,
      releases: this.nRelease,
      cached: this.cached,
      allocBucket: this.allocCount,
      freeBucket: this.freeCount,
      buckets: this.list.length,
      emptyBuckets: this.store.length,
    };
  }

  /**
   * Verifies the zone's own invariants (its items are the arena's to check).
   * Throws KernelError("CORRUPT") naming the first violation.
   */
  check(): void {
    const bad = (what: string): never => {
      throw new KernelError("CORRUPT", `quantum cache '${this.name}': ${what}`);
    };
    const fits = (b: Int32Array, n: number, what: string) => {
      if (b !== NO_BUCKET && b.length !== this.bucketSize) bad(`${what} has ${b.length} slots`);
      if (!(n >= 0 && n <= b.length)) bad(`${what} counts ${n} items in ${b.length} slots`);
    };
    fits(this.allocBucket, this.allocCount, "the alloc bucket");
    fits(this.freeBucket, this.freeCount, "the free bucket");
    if (this.list.length !== this.counts.length) bad("list and counts differ in length");
    this.list.forEach((b, k) => {
      if (b === NO_BUCKET || this.counts[k]! < 1) bad(`bucket ${k} of the list holds nothing`);
      fits(b, this.counts[k]!, `bucket ${k} of the list`);
    });
    for (const b of this.store) if (b.length !== this.bucketSize) bad("an empty bucket's size");
    const flow = this.nImport + this.nFree - this.nAlloc - this.nRelease;
    if (flow !== this.cached) {
      bad(`${this.cached} items cached, counters say ${flow}`);
    }
  }

  /** Copies the zone's state. */
  saveState(): QcacheZoneState {
    return {
      cpu: [copy(this.allocBucket), this.allocCount, copy(this.freeBucket), this.freeCount],
      list: this.list.map(copy),
      counts: this.counts.slice(),
      empty: this.store.length,
      counters: [this.nAlloc, this.nFree, this.nFail, this.nImport, this.nRelease],
    };
  }

  /** Puts back a state from {@link saveState}. */
  restoreState(st: QcacheZoneState): void {
    const [a, an, f, fn] = st.cpu;
    this.allocBucket = copy(a);
    this.allocCount = an;
    this.freeBucket = copy(f);
    this.freeCount = fn;
    this.list = st.list.map(copy);
    this.counts = st.counts.slice();
    this.store.length = Math.min(this.store.length, st.empty);
    while (this.store.length < st.empty) this.store.push(new Int32Array(this.bucketSize));
    [this.nAlloc, this.nFree, this.nFail, this.nImport, this.nRelease] = st.counters;
  }

  private takeEmpty(): Int32Array {
    return this.store.pop() ?? new Int32Array(this.bucketSize);
  }

  private pushList(b: Int32Array, n: number): void {
    this.list.push(b);
    this.counts.push(n);
  }

  /** `bucket_drain` and `bucket_free`: the items of `b` back to the arena, `b` to the store. */
  private release(b: Int32Array, n: number, ctx: C): void {
    this.src.releaseItems(this, b, n, ctx);
    this.nRelease += n;
    this.store.push(b);
  }
}

/** A copy of a bucket (the shared empty one stays itself). */
function copy(b: Int32Array): Int32Array {
  return b === NO_BUCKET ? b : b.slice();
}
