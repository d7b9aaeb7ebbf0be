/**
 * Quantum caches: the object caches that sit in front of a vmem arena for
 * every multiple of its quantum up to `qcache_max`, modelled on the illumos
 * kmem caches that `vmem_create` builds for that purpose (KMC_QCACHE |
 * KMC_NOTOUCH).
 *
 * Theory. A cache hands out buffers of one size (`bufsize`, a multiple of the
 * quantum). It has three layers, tried in order:
 *
 * 1. The CPU layer: a loaded magazine and a previously loaded one, each a
 *    stack of at most `magsize` buffers (the magazine size kmem picks for the
 *    chunk size: 15, 7, 3 or 1). Allocation pops the loaded magazine, swaps
 *    in the previous one when it still holds rounds, or trades an empty
 *    magazine for a full one from the depot. Free pushes, swapping with an
 *    empty previous magazine or trading a full one for an empty one.
 * 2. The depot: LIFO lists of full and of empty magazines.
 * 3. The slab layer: a slab is one `vmem_alloc` of `slabsize` bytes from the
 *    arena (`max(2^highbit(3 * qcache_max), 64)`), cut into chunks after a
 *    colour offset that advances by the alignment at each new slab and wraps
 *    at `slabsize % bufsize`. A new slab's free chunks are stacked so the
 *    highest address comes out first. Partly used slabs are kept ordered by
 *    use count, the fullest first (kmem's partial-slab tree; between slabs of
 *    equal count the one that reached that count last comes first, where kmem
 *    compares slab structure addresses). A slab whose last buffer comes back
 *    is returned to the arena at once.
 *
 * Reaping (`reap`) empties the depot: the rounds of every full magazine go
 * back to their slabs (freeing wholly free slabs to the arena) and the
 * magazines themselves are dropped, as `kmem_cache_reap_now` does. `purge`
 * also empties the CPU layer and disables it, as `kmem_cache_destroy` does.
 *
 * Data: structure of arrays. Slabs are indexed by a slab id from a pool;
 * buffer `b` of slab `s` has id `s * maxChunks + b`, with its key, its place
 * (free in its slab, or out of it) and two links (slab free chain, address
 * hash chain) in typed arrays. Magazines are rows of an Int32Array of buffer
 * ids. A buffer's key is its address while a client holds it and minus its
 * address otherwise; the address hash maps an address to the buffer whose key
 * equals it, so it finds only buffers a client holds, and that one lookup is
 * what lets `free` refuse an address that is not such a buffer of this cache.
 * A buffer out of its slab with a negative key is cached in a magazine.
 *
 * Invariants: a buffer is in exactly one of: its slab's free chain, one
 * magazine, a client's hands. A slab's use count is its number of buffers not
 * in its free chain; slabs with count in `[1, chunks)` are in the partial
 * buckets, full ones in none. `check()` verifies all of it.
 *
 * Cost: allocation and free through the CPU layer are O(1) with no object
 * creation; the slab layer is O(1) except for slab creation (O(chunks)) and
 * the rare rescan of partial buckets (O(maxChunks)). The CPU layer does the
 * least per call: the loaded magazine's row offset is kept beside its number,
 * and the count of buffers in use is not kept but read as allocations minus
 * frees; the arena inlines the pop of the loaded magazine. Members are
 * TypeScript `private`, not `#private`: as in vmem.ts, `#` members cost the
 * hot paths (the arena's alloc/free pair ran 1.28x slower under Deno).
 *
 * @module
 */

import { describe, KernelError, MAX_ADDR } from "./errors.ts";
import { highbit } from "../machine/bits.ts";

/** What a quantum cache needs from its arena: slab-sized allocations. */
export interface SlabSource {
  /** `vmem_alloc(arena, size, vmflag)` for a slab (bypasses the quantum caches). */
  slabAlloc(size: number, vmflag: number): number;
  /** `vmem_free(arena, addr, size)` of a slab. */
  slabFree(addr: number, size: number): void;
}

/** Counters of one quantum cache. */
export interface QcacheStats {
  /** Buffer size served. */
  bufsize: number;
  /** Bytes per slab imported from the arena. */
  slabsize: number;
  /** Buffers per magazine. */
  magsize: number;
  /** Successful allocations. */
  alloc: number;
  /** Frees. */
  free: number;
  /** Allocations that failed (no slab could be imported). */
  fail: number;
  /** Slabs created. */
  slabCreate: number;
  /** Slabs destroyed (given back to the arena). */
  slabDestroy: number;
  /** Live slabs. */
  slabs: number;
  /** Buffers in live slabs. */
  bufTotal: number;
  /** Buffers held by clients. */
  bufInUse: number;
  /** Buffers cached in magazines. */
  bufCached: number;
  /** Buffers free in their slabs. */
  bufSlab: number;
  /** Full magazines in the depot. */
  depotFull: number;
  /** Empty magazines in the depot. */
  depotEmpty: number;
}

/** Buffer places: in no live slab, free in its slab, out of it (cached or held). */
const B_NONE = 0;
const B_SLAB = 1;
const B_OUT = 2;

/** kmem's magazine types: (magsize, largest chunk size that still gets it). */
function magazineSize(chunksize: number): number {
  if (chunksize > 3200) return 1;
  if (chunksize > 256) return 3;
  if (chunksize > 64) return 7;
  return 15;
}

/**
 * The slab size of the quantum caches of an arena whose largest cached size
 * is `qcacheMax`: `max(2^highbit(3 * qcacheMax), 64)`.
 */
export function qcacheSlabSize(qcacheMax: number): number {
  return Math.max(2 ** highbit(3 * qcacheMax), 64);
}

type F64 = Float64Array<ArrayBuffer>;
type I32 = Int32Array<ArrayBuffer>;

/** Saved state of a cache (for undoing a refused request). */
export interface QcacheState {
  /** Copies of the Float64Array fields. */
  readonly f64: readonly [F64, F64];
  /** Copies of the Int32Array fields. */
  readonly i32: readonly [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32];
  /** Copy of the buffer states. */
  readonly u8: Uint8Array<ArrayBuffer>;
  /** The scalar fields. */
  readonly scalars: number[];
}

/** One quantum cache (a kmem cache with slabs, magazines and a depot). */
export class QuantumCache {
  // The fields every alloc and free touches come first: JavaScriptCore keeps
  // only an object's first properties inline, and a field past them costs
  // one more load on each access (under Bun the fast path is a quarter
  // slower with these declared where they belong by topic).

  /** @internal CPU layer: rounds left in the loaded magazine (-1: none loaded). */
  rounds = -1;
  /** @internal CPU layer: `loaded * magCapacityRounds`, the loaded magazine's row in magStore. */
  loadedBase = -1;
  /** Rounds per magazine (0 once purged). */
  magsize = 0;
  /** @internal Magazines: row m holds the buffer ids of magazine m. */
  magStore = new Int32Array(0);
  /** @internal Buffers: the key of buffer i, its address when a client holds it, else minus it. */
  bufKey = new Float64Array(0);
  /** Buffers: the place of buffer i (B_*). */
  private bufState = new Uint8Array(0);
  // Address hash of the buffers of live slabs, chained through bufHNext.
  private hashTable = new Int32Array(16).fill(-1);
  private hashShift = 28;
  private bufHNext = new Int32Array(0);
  private readonly invAlign: number = 0;
  /** @internal Counter, also bumped by the arena's inlined fast path. */
  nAlloc = 0;
  private nFree = 0;

  /** Name, as illumos builds it: `<arena>_<bufsize>`. */
  readonly name: string;
  /** Size of every buffer. */
  readonly bufsize: number;
  /** Alignment (the arena quantum), also the colour step. */
  readonly align: number;
  /** Bytes per slab. */
  readonly slabsize: number;
  /** Buffers per slab at colour 0. */
  readonly maxChunks: number;
  private readonly src: SlabSource;
  /** Rounds a magazine row holds (magsize at creation; purging sets magsize to 0). */
  private readonly magCapacityRounds: number;
  private readonly maxcolor: number;
  private color = 0;

  // Slabs.
  private slabCap = 0;
  private slabBase = new Float64Array(0);
  private slabChunks = new Int32Array(0);
  private slabRefcnt = new Int32Array(0);
  private slabHead = new Int32Array(0);
  private slabNext = new Int32Array(0);
  private slabPrev = new Int32Array(0);
  private slabFreeList = -1;
  private nslabs = 0;
  private partialHead: Int32Array;
  private partialMax = 0;

  // Buffers: next free buffer of the same slab.
  private bufNext = new Int32Array(0);

  // Address hash: the rest.
  private hashMask = 15;
  private hashCount = 0;

  // Magazines: row m of magStore holds its rounds; magNext links the depot.
  private magCap = 0;
  private magNext = new Int32Array(0);
  private magFreeList = -1;
  /** The loaded magazine (-1: none). */
  private loaded = -1;
  private ploaded = -1;
  private prounds = -1;
  private fullHead = -1;
  private nFull = 0;
  private emptyHead = -1;
  private nEmpty = 0;

  // Counters.
  private nFail = 0;
  private nSlabCreate = 0;
  private nSlabDestroy = 0;
  private bufTotal = 0;

  /**
   * A cache of `bufsize`-byte buffers aligned to `align`, whose slabs of
   * `slabsize` bytes come from `src`.
   */
  constructor(name: string, bufsize: number, align: number, slabsize: number, src: SlabSource) {
    this.name = name;
    this.bufsize = bufsize;
    this.align = align;
    this.slabsize = slabsize;
    this.src = src;
    this.maxChunks = Math.floor(slabsize / bufsize);
    this.maxcolor = slabsize % bufsize;
    this.magsize = magazineSize(bufsize);
    this.magCapacityRounds = this.magsize;
    this.invAlign = 1 / align;
    this.partialHead = new Int32Array(this.maxChunks + 1).fill(-1);
    this.growSlabs(4);
    this.growMagazines(4);
  }

  /**
   * `kmem_cache_alloc`: a buffer address, or 0 when no slab could be
   * imported (only with VM_NOSLEEP; a sleeping import that would wait throws
   * from the arena).
   */
  alloc(vmflag: number): number {
    for (;;) {
      if (this.rounds > 0) {
        const id = this.magStore[this.loadedBase + --this.rounds]!;
        const addr = -this.bufKey[id]!;
        this.bufKey[id] = addr;
        this.nAlloc++;
        return addr;
      }
      if (this.prounds > 0) {
        this.reload(this.ploaded, this.prounds);
        continue;
      }
      if (this.magsize === 0) break;
      const fmp = this.depotPop(true);
      if (fmp >= 0) {
        if (this.ploaded >= 0) this.depotPush(false, this.ploaded);
        this.reload(fmp, this.magsize);
        continue;
      }
      break;
    }
    return this.slabAllocBuffer(vmflag);
  }

  /** True when `addr` is a buffer of this cache that a client holds. */
  owns(addr: number): boolean {
    return this.lookup(addr) >= 0;
  }

  /**
   * `kmem_cache_free` of a buffer a client holds. Refuses (BADFREE, nothing
   * changed) an address that is not such a buffer of this cache.
   */
  free(addr: number): void {
    const id = this.lookup(addr);
    const r = this.rounds;
    if (id >= 0 && r >= 0 && r < this.magsize) {
      this.magStore[this.loadedBase + r] = id;
      this.rounds = r + 1;
      this.bufKey[id] = -addr;
      this.nFree++;
      return;
    }
    this.freeChecked(addr, id);
  }

  /** {@link free} when the loaded magazine has no room, or to refuse a bad address. */
  private freeChecked(addr: number, id: number): void {
    if (id < 0) throw this.badFreeError(addr);
    this.bufKey[id] = -addr;
    this.nFree++;
    this.freeMiss(id);
  }

  private badFreeError(addr: number): KernelError {
    if (!(Number.isInteger(addr) && addr >= 1 && addr <= MAX_ADDR)) {
      return new KernelError(
        "EINVAL",
        `addr must be an integer in [1, 2^53 - 1], got ${describe(addr)}`,
      );
    }
    return new KernelError(
      "BADFREE",
      `free of ${describe(addr)} to quantum cache '${this.name}': ` +
        (this.find(addr, -addr) >= 0 ? "buffer is not allocated" : "not one of its buffers"),
    );
  }

  /** kmem_cache_free when the loaded magazine is full (or absent). */
  private freeMiss(id: number): void {
    for (;;) {
      if (this.rounds >= 0 && this.rounds < this.magsize) {
        this.magStore[this.loadedBase + this.rounds++] = id;
        return;
      }
      if (this.prounds === 0) {
        this.reload(this.ploaded, this.prounds);
        continue;
      }
      if (this.magsize === 0) break;
      let emp = this.depotPop(false);
      if (emp >= 0) {
        if (this.ploaded >= 0) this.depotPush(true, this.ploaded);
        this.reload(emp, 0);
        continue;
      }
      emp = this.newMagazine();
      this.depotPush(false, emp);
    }
    this.slabFreeBuffer(id);
  }

  /** True when reaping would give buffers back to slabs. */
  reapable(): boolean {
    return this.nFull > 0;
  }

  /** Empties the depot (`kmem_cache_reap_now`): full magazines first, then empty ones. */
  reap(): void {
    let mp: number;
    while ((mp = this.depotPop(true)) >= 0) this.destroyMagazine(mp, this.magsize);
    while ((mp = this.depotPop(false)) >= 0) this.destroyMagazine(mp, 0);
  }

  /**
   * Empties the CPU layer and the depot and disables magazines
   * (`kmem_cache_magazine_purge`, as `kmem_cache_destroy` does).
   */
  purge(): void {
    const mp = this.loaded, pmp = this.ploaded, r = this.rounds, pr = this.prounds;
    const magsize = this.magsize;
    this.loaded = this.ploaded = -1;
    this.loadedBase = -1;
    this.rounds = this.prounds = -1;
    this.magsize = 0;
    if (mp >= 0) this.destroyMagazine(mp, r);
    if (pmp >= 0) this.destroyMagazine(pmp, pr);
    while (this.nFull > 0) this.destroyMagazine(this.depotPop(true), magsize);
    while (this.nEmpty > 0) this.destroyMagazine(this.depotPop(false), 0);
  }

  /** Counters and occupancy. */
  stats(): QcacheStats {
    let cached = 0;
    if (this.rounds > 0) cached += this.rounds;
    if (this.prounds > 0) cached += this.prounds;
    cached += this.nFull * this.magCapacityRounds;
    return {
      bufsize: this.bufsize,
      slabsize: this.slabsize,
      magsize: this.magsize,
      alloc: this.nAlloc,
      free: this.nFree,
      fail: this.nFail,
      slabCreate: this.nSlabCreate,
      slabDestroy: this.nSlabDestroy,
      slabs: this.nslabs,
      bufTotal: this.bufTotal,
      bufInUse: this.nAlloc - this.nFree,
      bufCached: cached,
      bufSlab: this.bufTotal - (this.nAlloc - this.nFree) - cached,
      depotFull: this.nFull,
      depotEmpty: this.nEmpty,
    };
  }

  /** Calls `fn` with the base of every live slab. */
  forEachSlab(fn: (base: number, size: number) => void): void {
    for (let s = 0; s < this.slabCap; s++) {
      if (this.slabChunks[s]! > 0) fn(this.slabBase[s]!, this.slabsize);
    }
  }

  /**
   * Describes `addr` when it lies in one of this cache's slabs:
   * `"buffer 0x..+off (allocated|cached|free)"`, else null.
   */
  whatis(addr: number): string | null {
    for (let s = 0; s < this.slabCap; s++) {
      const n = this.slabChunks[s]!;
      if (n === 0) continue;
      const base = this.slabBase[s]!;
      if (addr < base || addr >= base + this.slabsize) continue;
      for (let b = 0; b < n; b++) {
        const id = s * this.maxChunks + b;
        const key = this.bufKey[id]!, a = Math.abs(key);
        if (addr >= a && addr < a + this.bufsize) {
          const what = key > 0 ? "allocated" : this.bufState[id] === B_OUT ? "cached" : "free";
          return `buffer 0x${a.toString(16)}+${addr - a} of quantum cache '${this.name}' (${what})`;
        }
      }
      return `slab 0x${base.toString(16)}+${addr - base} of quantum cache '${this.name}' (colour)`;
    }
    return null;
  }

  /** Verifies the cache's invariants; throws KernelError("CORRUPT") on the first violation. */
  check(): void {
    const bad = (what: string): never => {
      throw new KernelError("CORRUPT", `quantum cache '${this.name}': ${what}`);
    };
    let total = 0, client = 0, cached = 0, live = 0, hashed = 0;
    const inMag = new Uint8Array(this.slabCap * this.maxChunks);
    const markMag = (m: number, n: number) => {
      for (let r = 0; r < n; r++) {
        const id = this.magStore[m * this.magCapacityRounds + r]!;
        if (this.bufState[id] !== B_OUT || this.bufKey[id]! > 0) {
          bad(`magazine ${m} round ${r} holds a buffer not cached`);
        }
        if (inMag[id]) bad(`buffer ${id} in two magazines`);
        inMag[id] = 1;
        cached++;
      }
    };
    if (this.loaded >= 0) markMag(this.loaded, this.rounds);
    else if (this.rounds !== -1) bad("rounds without a loaded magazine");
    if (this.ploaded >= 0) markMag(this.ploaded, this.prounds);
    else if (this.prounds !== -1) bad("previous rounds without a magazine");
    let n = 0;
    for (let m = this.fullHead; m >= 0; m = this.magNext[m]!) {
      markMag(m, this.magsize);
      n++;
    }
    if (n !== this.nFull) bad("depot full count");
    n = 0;
    for (let m = this.emptyHead; m >= 0; m = this.magNext[m]!) n++;
    if (n !== this.nEmpty) bad("depot empty count");
    const inPartial = new Uint8Array(this.slabCap);
    for (let r = 1; r < this.partialHead.length; r++) {
      let prev = -1;
      for (let s = this.partialHead[r]!; s >= 0; s = this.slabNext[s]!) {
        if (this.slabRefcnt[s] !== r) {
          bad(`slab ${s} in partial bucket ${r} has count ${this.slabRefcnt[s]}`);
        }
        if (this.slabPrev[s] !== prev) bad(`partial bucket ${r} links`);
        if (inPartial[s]) bad(`slab ${s} twice in partial buckets`);
        inPartial[s] = 1;
        prev = s;
      }
      if (r > this.partialMax && this.partialHead[r]! >= 0) {
        bad("partialMax below a non-empty bucket");
      }
    }
    for (let s = 0; s < this.slabCap; s++) {
      const chunks = this.slabChunks[s]!;
      if (chunks === 0) continue;
      live++;
      const base = this.slabBase[s]!;
      let free = 0;
      for (let id = this.slabHead[s]!; id >= 0; id = this.bufNext[id]!) {
        if (((id / this.maxChunks) | 0) !== s) bad(`slab ${s} free chain reaches buffer ${id}`);
        if (this.bufState[id] !== B_SLAB || this.bufKey[id]! > 0) {
          bad(`buffer ${id} on a slab chain is not free`);
        }
        if (++free > chunks) bad(`slab ${s} free chain loops`);
      }
      let used = 0;
      for (let b = 0; b < chunks; b++) {
        const id = s * this.maxChunks + b;
        const st = this.bufState[id], key = this.bufKey[id]!, a = Math.abs(key);
        if (st === B_NONE) bad(`buffer ${id} of live slab ${s} has no place`);
        if (key > 0) {
          if (st !== B_OUT) bad(`buffer ${id} held by a client but free in its slab`);
          if (inMag[id]) bad(`buffer ${id} held by a client and in a magazine`);
          client++;
        } else if (st === B_OUT && !inMag[id]) bad(`buffer ${id} cached but in no magazine`);
        if (st !== B_SLAB) used++;
        if (a < base || a + this.bufsize > base + this.slabsize) {
          bad(`buffer ${id} outside its slab`);
        }
        if (this.find(a, key) !== id) bad(`buffer ${id} missing from the address hash`);
        hashed++;
      }
      if (used !== this.slabRefcnt[s]) {
        bad(`slab ${s} count ${this.slabRefcnt[s]} but ${used} in use`);
      }
      if (used === 0) bad(`slab ${s} wholly free but kept`);
      if ((used < chunks) !== (inPartial[s] === 1)) bad(`slab ${s} partial-list membership`);
      total += chunks;
    }
    if (live !== this.nslabs) bad(`slab count ${this.nslabs}, found ${live}`);
    if (total !== this.bufTotal) bad(`buffer total ${this.bufTotal}, found ${total}`);
    if (client !== this.nAlloc - this.nFree) {
      bad(`buffers in use ${this.nAlloc - this.nFree}, found ${client}`);
    }
    if (hashed !== this.hashCount) bad(`hash count ${this.hashCount}, found ${hashed}`);
    if (cached > total - client) bad("more cached buffers than exist");
  }

  /** Copies the whole state (rare: undoing a refused sleeping request). */
  saveState(): QcacheState {
    return {
      f64: [this.slabBase.slice(), this.bufKey.slice()],
      i32: [
        this.slabChunks.slice(),
        this.slabRefcnt.slice(),
        this.slabHead.slice(),
        this.slabNext.slice(),
        this.slabPrev.slice(),
        this.partialHead.slice(),
        this.bufNext.slice(),
        this.bufHNext.slice(),
        this.hashTable.slice(),
        this.magStore.slice(),
        this.magNext.slice(),
      ],
      u8: this.bufState.slice(),
      scalars: [
        this.magsize,
        this.color,
        this.slabCap,
        this.slabFreeList,
        this.nslabs,
        this.partialMax,
        this.hashMask,
        this.hashShift,
        this.hashCount,
        this.magCap,
        this.magFreeList,
        this.loaded,
        this.rounds,
        this.ploaded,
        this.prounds,
        this.fullHead,
        this.nFull,
        this.emptyHead,
        this.nEmpty,
        this.nAlloc,
        this.nFree,
        this.nFail,
        this.nSlabCreate,
        this.nSlabDestroy,
        this.bufTotal,
      ],
    };
  }

  /** Puts back a state from {@link saveState}. */
  restoreState(st: QcacheState): void {
    [this.slabBase, this.bufKey] = st.f64;
    [
      this.slabChunks,
      this.slabRefcnt,
      this.slabHead,
      this.slabNext,
      this.slabPrev,
      this.partialHead,
      this.bufNext,
      this.bufHNext,
      this.hashTable,
      this.magStore,
      this.magNext,
    ] = st.i32;
    this.bufState = st.u8;
    const s = st.scalars;
    let i = 0;
    this.magsize = s[i++]!;
    this.color = s[i++]!;
    this.slabCap = s[i++]!;
    this.slabFreeList = s[i++]!;
    this.nslabs = s[i++]!;
    this.partialMax = s[i++]!;
    this.hashMask = s[i++]!;
    this.hashShift = s[i++]!;
    this.hashCount = s[i++]!;
    this.magCap = s[i++]!;
    this.magFreeList = s[i++]!;
    this.loaded = s[i++]!;
    this.loadedBase = this.loaded * this.magCapacityRounds;
    this.rounds = s[i++]!;
    this.ploaded = s[i++]!;
    this.prounds = s[i++]!;
    this.fullHead = s[i++]!;
    this.nFull = s[i++]!;
    this.emptyHead = s[i++]!;
    this.nEmpty = s[i++]!;
    this.nAlloc = s[i++]!;
    this.nFree = s[i++]!;
    this.nFail = s[i++]!;
    this.nSlabCreate = s[i++]!;
    this.nSlabDestroy = s[i++]!;
    this.bufTotal = s[i++]!;
  }

  // ---- CPU layer and depot ----

  private reload(mp: number, rounds: number): void {
    this.prounds = this.rounds;
    this.rounds = rounds;
    this.ploaded = this.loaded;
    this.loaded = mp;
    this.loadedBase = mp * this.magCapacityRounds;
  }

  private depotPop(full: boolean): number {
    if (full) {
      const m = this.fullHead;
      if (m >= 0) {
        this.fullHead = this.magNext[m]!;
        this.nFull--;
      }
      return m;
    }
    const m = this.emptyHead;
    if (m >= 0) {
      this.emptyHead = this.magNext[m]!;
      this.nEmpty--;
    }
    return m;
  }

  private depotPush(full: boolean, m: number): void {
    if (full) {
      this.magNext[m] = this.fullHead;
      this.fullHead = m;
      this.nFull++;
    } else {
      this.magNext[m] = this.emptyHead;
      this.emptyHead = m;
      this.nEmpty++;
    }
  }

  private newMagazine(): number {
    if (this.magFreeList < 0) this.growMagazines(this.magCap * 2);
    const m = this.magFreeList;
    this.magFreeList = this.magNext[m]!;
    return m;
  }

  /** Frees the first `n` rounds of magazine `m` to their slabs, then the magazine. */
  private destroyMagazine(m: number, n: number): void {
    const base = m * this.magCapacityRounds;
    for (let r = 0; r < n; r++) this.slabFreeBuffer(this.magStore[base + r]!);
    this.magNext[m] = this.magFreeList;
    this.magFreeList = m;
  }

  private growMagazines(cap: number): void {
    const old = this.magCap;
    const store = new Int32Array(cap * this.magCapacityRounds);
    store.set(this.magStore);
    const next = new Int32Array(cap);
    next.set(this.magNext);
    for (let m = cap - 1; m >= old; m--) {
      next[m] = this.magFreeList;
      this.magFreeList = m;
    }
    this.magStore = store;
    this.magNext = next;
    this.magCap = cap;
  }

  // ---- Slab layer ----

  private slabAllocBuffer(vmflag: number): number {
    let sp = this.partialMax > 0 ? this.partialHead[this.partialMax]! : -1;
    let fresh = false;
    if (sp < 0) {
      sp = this.slabCreate(vmflag);
      if (sp < 0) {
        this.nFail++;
        return 0;
      }
      fresh = true;
    }
    const id = this.slabHead[sp]!;
    this.slabHead[sp]! = this.bufNext[id]!;
    const was = this.slabRefcnt[sp]!++;
    if (this.slabHead[sp]! < 0) {
      if (!fresh) this.partialRemove(sp, was);
    } else {
      if (!fresh) this.partialRemove(sp, was);
      this.partialAdd(sp, was + 1);
    }
    this.bufState[id] = B_OUT;
    const addr = -this.bufKey[id]!;
    this.bufKey[id] = addr;
    this.nAlloc++;
    return addr;
  }

  private slabFreeBuffer(id: number): void {
    const sp = (id / this.maxChunks) | 0;
    const wasFull = this.slabHead[sp]! < 0;
    this.bufNext[id] = this.slabHead[sp]!;
    this.slabHead[sp] = id;
    this.bufState[id] = B_SLAB;
    const was = this.slabRefcnt[sp]!--;
    if (!wasFull) this.partialRemove(sp, was);
    if (was === 1) {
      this.slabDestroy(sp);
      return;
    }
    this.partialAdd(sp, was - 1);
  }

  private slabCreate(vmflag: number): number {
    let color = this.color + this.align;
    if (color > this.maxcolor) color = 0;
    const base = this.src.slabAlloc(this.slabsize, vmflag);
    this.color = color;
    if (base === 0) return -1;
    if (this.slabFreeList < 0) this.growSlabs(this.slabCap * 2);
    const sp = this.slabFreeList;
    this.slabFreeList = this.slabNext[sp]!;
    const chunks = Math.floor((this.slabsize - color) / this.bufsize);
    this.slabBase[sp] = base;
    this.slabChunks[sp] = chunks;
    this.slabRefcnt[sp] = 0;
    let head = -1;
    let a = base + color;
    const first = sp * this.maxChunks;
    if (this.hashCount + chunks > this.hashMask + 1) this.rehash((this.hashMask + 1) * 4);
    for (let b = 0; b < chunks; b++) {
      const id = first + b;
      this.bufKey[id] = -a;
      this.bufNext[id] = head;
      this.bufState[id] = B_SLAB;
      this.hashInsert(id);
      head = id;
      a += this.bufsize;
    }
    this.slabHead[sp] = head;
    this.nslabs++;
    this.nSlabCreate++;
    this.bufTotal += chunks;
    return sp;
  }

  private slabDestroy(sp: number): void {
    const chunks = this.slabChunks[sp]!;
    const first = sp * this.maxChunks;
    for (let b = 0; b < chunks; b++) {
      this.hashRemove(first + b);
      this.bufState[first + b] = B_NONE;
    }
    const base = this.slabBase[sp]!;
    this.slabChunks[sp] = 0;
    this.slabNext[sp] = this.slabFreeList;
    this.slabFreeList = sp;
    this.nslabs--;
    this.nSlabDestroy++;
    this.bufTotal -= chunks;
    this.src.slabFree(base, this.slabsize);
  }

  private partialAdd(sp: number, r: number): void {
    const h = this.partialHead[r]!;
    this.slabNext[sp] = h;
    this.slabPrev[sp] = -1;
    if (h >= 0) this.slabPrev[h] = sp;
    this.partialHead[r] = sp;
    if (r > this.partialMax) this.partialMax = r;
  }

  private partialRemove(sp: number, r: number): void {
    const n = this.slabNext[sp]!, p = this.slabPrev[sp]!;
    if (p >= 0) this.slabNext[p] = n;
    else this.partialHead[r] = n;
    if (n >= 0) this.slabPrev[n] = p;
    if (r === this.partialMax && this.partialHead[r]! < 0) {
      let m = r - 1;
      while (m > 0 && this.partialHead[m]! < 0) m--;
      this.partialMax = m;
    }
  }

  private growSlabs(cap: number): void {
    const old = this.slabCap;
    const grow64 = (a: Float64Array, n: number) => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    const grow32 = (a: Int32Array, n: number) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.slabBase = grow64(this.slabBase, cap);
    this.slabChunks = grow32(this.slabChunks, cap);
    this.slabRefcnt = grow32(this.slabRefcnt, cap);
    this.slabHead = grow32(this.slabHead, cap);
    this.slabNext = grow32(this.slabNext, cap);
    this.slabPrev = grow32(this.slabPrev, cap);
    const nb = cap * this.maxChunks;
    this.bufKey = grow64(this.bufKey, nb);
    this.bufNext = grow32(this.bufNext, nb);
    this.bufHNext = grow32(this.bufHNext, nb);
    const st = new Uint8Array(nb);
    st.set(this.bufState);
    this.bufState = st;
    for (let s = cap - 1; s >= old; s--) {
      this.slabNext[s] = this.slabFreeList;
      this.slabFreeList = s;
    }
    this.slabCap = cap;
  }

  // ---- Address hash ----

  /** Fibonacci hashing of the low 32 bits of `addr / align` (the chain compares whole keys). */
  private hashOf(addr: number): number {
    return Math.imul((addr * this.invAlign) >>> 0, 0x9e3779b1) >>> this.hashShift;
  }

  private hashInsert(id: number): void {
    const h = this.hashOf(Math.abs(this.bufKey[id]!));
    this.bufHNext[id] = this.hashTable[h]!;
    this.hashTable[h] = id;
    this.hashCount++;
  }

  private hashRemove(id: number): void {
    const h = this.hashOf(Math.abs(this.bufKey[id]!));
    let p = -1;
    for (let c = this.hashTable[h]!; c >= 0; c = this.bufHNext[c]!) {
      if (c === id) {
        if (p < 0) this.hashTable[h] = this.bufHNext[c]!;
        else this.bufHNext[p] = this.bufHNext[c]!;
        this.hashCount--;
        return;
      }
      p = c;
    }
    throw new KernelError("CORRUPT", `quantum cache '${this.name}': buffer ${id} not hashed`);
  }

  /**
   * The buffer a client holds at `addr`, or -1: `find(addr, addr)` written
   * out, since every free runs it and under Bun the extra call level costs
   * the cached alloc+free pair 3 ns (20 -> 23 ns, measured).
   */
  private lookup(addr: number): number {
    for (let c = this.hashTable[this.hashOf(addr)]!; c >= 0; c = this.bufHNext[c]!) {
      if (this.bufKey[c] === addr) return c;
    }
    return -1;
  }

  /** The buffer at `addr` whose key is `key` (`addr` or `-addr`), or -1. */
  private find(addr: number, key: number): number {
    for (let c = this.hashTable[this.hashOf(addr)]!; c >= 0; c = this.bufHNext[c]!) {
      if (this.bufKey[c] === key) return c;
    }
    return -1;
  }

  private rehash(size: number): void {
    const old = this.hashTable;
    this.hashTable = new Int32Array(size).fill(-1);
    this.hashMask = size - 1;
    this.hashShift = 32 - Math.log2(size);
    for (let h = 0; h < old.length; h++) {
      let c = old[h]!;
      while (c >= 0) {
        const next = this.bufHNext[c]!;
        const k = this.hashOf(Math.abs(this.bufKey[c]!));
        this.bufHNext[c] = this.hashTable[k]!;
        this.hashTable[k] = c;
        c = next;
      }
    }
  }
}
