/**
 * The page cache and the page daemon.
 *
 * Theory. The page cache holds clean pages of files (a buffer cache): their
 * contents are on disk, so a page can be dropped at any time without I/O.
 * Pages enter the cache at the tail of a FIFO and are reclaimed from its
 * head, oldest first, as the inactive queue of a UVM page daemon with no
 * dirty pages would be. The FIFO is a ring of page handles (whatever numbers
 * the page allocator names its pages by: the kernel's page ids), a power of
 * two long so that positions wrap with a mask, in an `Int32Array` when every
 * handle fits one (else a `Float64Array`); it doubles when full, so
 * steady-state insertion and reclamation allocate nothing. Filling the cache
 * takes pages in batches from the allocator, which kicks the daemon once per
 * batch rather than once per page; reclaiming gives pages back in batches
 * too (a run, or a drain, is one batch).
 *
 * The page daemon watches the free-page count: when it falls below
 * `freemin` (uvmexp.freemin) an allocation kicks it, and a run reclaims
 * cache pages until `freetarg` (uvmexp.freetarg) pages are free or the cache
 * is empty. A caller that needs a known number of pages at once (segkmem
 * backing a large span) says so when it kicks, as illumos' page_create_wait
 * raises `needfree`: the next run's target grows by that much. Runs happen on the event loop, as the daemon is its own thread
 * in a kernel: `kick()` schedules one with `setImmediate` (a timer would be
 * clamped to milliseconds, and a kernel under pressure kicks its daemon
 * thousands of times), and `wait()` (uvm_wait) kicks the daemon and settles
 * after its next run. After a run that freed pages, the
 * daemon wakes everyone who sleeps on memory (`onFreed` listeners: the
 * kernel arenas' waiters, the page allocator's waiters).
 *
 * `reclaimable()` (uvm_reclaimable) is true while the cache holds a page:
 * that is what lets uvm_pglistalloc's aggressive contiguous path go on.
 *
 * Cost: insert and reclaim are O(1) per page; a run is O(pages reclaimed).
 *
 * @module
 */

import { checkInteger, KernelError } from "./errors.ts";

/** What the page daemon needs of the physical page allocator. */
export interface PageFrames {
  /** Number of free pages now. */
  readonly freePages: number;
  /** Page handles are integers in `[0, handleLimit)`. */
  readonly handleLimit: number;
  /**
   * Takes up to `max` free pages for the cache, writing their handles to
   * `out[at ..]`; returns how many it took (0 when none is free).
   */
  allocCachePages(out: Int32Array | Float64Array, at: number, max: number): number;
  /** Gives the cache pages `handles[at .. at + n)` back to the free lists, in that order. */
  freeCachePages(handles: Int32Array | Float64Array, at: number, n: number): void;
}

/** Counters of the page daemon, as uvmexp keeps them. */
export interface PageDaemonStats {
  /** Runs of the daemon. */
  runs: number;
  /** Kicks received (allocations that found memory low). */
  kicks: number;
  /** Pages reclaimed from the cache. */
  reclaimed: number;
  /** Callers that waited for the daemon (uvm_wait). */
  waits: number;
  /** Times the daemon woke sleepers after freeing pages. */
  wakeups: number;
}

/** A FIFO of clean file pages that can be dropped at any time. */
export class PageCache {
  #ring: Int32Array | Float64Array;
  #mask: number;
  #head = 0;
  #count = 0;
  readonly #frames: PageFrames;
  /** Pages ever inserted. */
  inserted = 0;

  /** An empty cache taking its pages from `frames` (room for `initialCapacity` before it grows). */
  constructor(frames: PageFrames, initialCapacity?: number) {
    if (initialCapacity === undefined) initialCapacity = 1024;
    checkInteger("initialCapacity", initialCapacity, 1, 2 ** 30);
    this.#frames = frames;
    const n = 2 ** Math.max(4, Math.ceil(Math.log2(initialCapacity)));
    this.#ring = frames.handleLimit <= 2 ** 31 ? new Int32Array(n) : new Float64Array(n);
    this.#mask = n - 1;
  }

  /** Pages in the cache. */
  get size(): number {
    return this.#count;
  }

  /**
   * Reads one more file page into the cache: takes a free page and returns
   * its handle, or -1 when no page is free.
   */
  insert(): number {
    if (this.#count === this.#ring.length) this.#grow();
    const at = (this.#head + this.#count) & this.#mask;
    if (this.#frames.allocCachePages(this.#ring, at, 1) === 0) return -1;
    this.#count++;
    this.inserted++;
    return this.#ring[at]!;
  }

  /**
   * Reads file pages into the cache until no page is free or `max` were
   * read, taking them from the allocator in batches; returns how many.
   */
  fill(max?: number): number {
    if (max === undefined) max = Infinity;
    let got = 0;
    while (got < max) {
      if (this.#count === this.#ring.length) this.#grow();
      const at = (this.#head + this.#count) & this.#mask;
      // The free stretch of the ring from `at`, up to its end.
      const room = Math.min(this.#ring.length - this.#count, this.#ring.length - at, max - got);
      const n = this.#frames.allocCachePages(this.#ring, at, room);
      this.#count += n;
      this.inserted += n;
      got += n;
      if (n < room) break;
    }
    return got;
  }

  /** Drops the oldest page, returning its handle, or -1 when empty. */
  reclaimOne(): number {
    if (this.#count === 0) return -1;
    const handle = this.#ring[this.#head]!;
    this.reclaim(1);
    return handle;
  }

  /** Drops the `max` oldest pages (or all, if fewer), oldest first; returns how many. */
  reclaim(max: number): number {
    const n = Math.max(0, Math.min(max, this.#count));
    let left = n;
    while (left > 0) {
      // The stretch of the ring from the head, up to its end.
      const k = Math.min(left, this.#ring.length - this.#head);
      this.#frames.freeCachePages(this.#ring, this.#head, k);
      this.#head = (this.#head + k) & this.#mask;
      this.#count -= k;
      left -= k;
    }
    return n;
  }

  /** Calls `fn` with every cached page's handle, oldest first. */
  forEach(fn: (handle: number) => void): void {
    for (let i = 0; i < this.#count; i++) fn(this.#ring[(this.#head + i) & this.#mask]!);
  }

  #grow(): void {
    const ring = this.#ring;
    const next = ring instanceof Int32Array
      ? new Int32Array(ring.length * 2)
      : new Float64Array(ring.length * 2);
    // The oldest part (from the head to the ring's end), then the wrapped part.
    const tail = Math.min(this.#count, ring.length - this.#head);
    next.set(ring.subarray(this.#head, this.#head + tail), 0);
    next.set(ring.subarray(0, this.#count - tail), tail);
    this.#ring = next;
    this.#mask = next.length - 1;
    this.#head = 0;
  }
}

/** The page daemon: reclaims cache pages when free memory runs low. */
export class PageDaemon {
  /** Below this many free pages an allocation kicks the daemon. */
  readonly freemin: number;
  /** A run reclaims until this many pages are free. */
  readonly freetarg: number;
  /** The cache the daemon reclaims from. */
  readonly cache: PageCache;
  readonly #frames: PageFrames;
  readonly #listeners: (() => void)[] = [];
  #waiters: (() => void)[] = [];
  #scheduled = false;
  #needfree = 0;
  readonly #stats: PageDaemonStats = { runs: 0, kicks: 0, reclaimed: 0, waits: 0, wakeups: 0 };

  /** A daemon over `frames` and `cache` with the given watermarks (pages). */
  constructor(frames: PageFrames, cache: PageCache, freemin: number, freetarg: number) {
    checkInteger("freemin", freemin, 0);
    checkInteger("freetarg", freetarg, freemin);
    this.#frames = frames;
    this.cache = cache;
    this.freemin = freemin;
    this.freetarg = freetarg;
  }

  /** The daemon's counters (a copy). */
  get stats(): PageDaemonStats {
    return { ...this.#stats };
  }

  /** Registers `fn` to be called after every run that freed pages. */
  onFreed(fn: () => void): void {
    this.#listeners.push(fn);
  }

  /** uvm_reclaimable: could the daemon free something? */
  reclaimable(): boolean {
    return this.cache.size > 0;
  }

  /** True when free memory is below `freemin`, so an allocation should kick. */
  get low(): boolean {
    return this.#frames.freePages < this.freemin;
  }

  /**
   * uvm_kick_pdaemon: schedules a run on the event loop (once). `needfree`
   * pages more than `freetarg` are wanted by the caller.
   */
  kick(needfree?: number): void {
    if (needfree === undefined) needfree = 0;
    this.#stats.kicks++;
    this.#needfree = Math.max(this.#needfree, needfree);
    if (this.#scheduled) return;
    this.#scheduled = true;
    runSoon(() => {
      this.#scheduled = false;
      this.run();
    });
  }

  /**
   * uvm_wait: kicks the daemon and settles after its next run. Rejects with
   * `ECANCELED` when `signal` aborts first.
   */
  wait(signal?: AbortSignal): Promise<void> {
    this.#stats.waits++;
    if (signal?.aborted) return Promise.reject(canceled(signal));
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        reject(canceled(signal!));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(done);
      this.kick();
    });
  }

  /**
   * One run: reclaims cache pages until `freetarg` pages are free or the
   * cache is empty, wakes sleepers if it freed any, then settles the
   * waiters of this run. Returns the number of pages reclaimed.
   */
  run(): number {
    this.#stats.runs++;
    const target = this.freetarg + this.#needfree;
    this.#needfree = 0;
    const freed = this.cache.reclaim(target - this.#frames.freePages);
    this.#stats.reclaimed += freed;
    if (freed > 0) this.notifyFreed();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
    return freed;
  }

  /** Wakes everyone who sleeps on memory (also used when the kernel frees pages). */
  notifyFreed(): void {
    this.#stats.wakeups++;
    for (const fn of this.#listeners) fn();
  }

  /** Drops every cache page (as at unmount), returning the count. */
  drain(): number {
    const n = this.cache.reclaim(this.cache.size);
    if (n > 0) this.notifyFreed();
    return n;
  }
}

function canceled(signal: AbortSignal): KernelError {
  const why = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
  return new KernelError("ECANCELED", `wait for the page daemon canceled: ${why}`);
}

/**
 * Runs `fn` once the current task is done, ahead of timers: `setImmediate`
 * where the runtime has one (Deno, Bun, Node), a zero-delay timer in a
 * browser.
 */
const runSoon: (fn: () => void) => void = (() => {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown };
  const immediate = g.setImmediate;
  if (typeof immediate === "function") return (fn) => void immediate(fn);
  return (fn) => void setTimeout(fn, 0);
})();
