/**
 * Free-page queues, `uvm_pagealloc` and `uvm_pagefree`: the {@link Uvm} object
 * that ties the page array, the free lists and the page daemon together.
 *
 * Theory. Every free page sits on the queue of its segment's free list (the
 * x86 port has six: DEFAULT above 4 GiB first, then FIRST1T ... FIRST16).
 * A queue is a circular doubly-linked list through the page array's link
 * arrays, headed by a sentinel id (0 to 5); links are stored relative to the
 * page so that the zero arrays of a fresh segment already form a chain from
 * its highest free page down to its lowest, and loading a segment only
 * splices that chain in front of the queue, as NetBSD's boot-time frees in
 * ascending order leave it: four link writes, whatever its size.
 * `uvm_pagealloc` pops the head of the first non-empty queue (free list 0
 * first, or one given list); `uvm_pagefree` pushes the page back at the
 * head: both O(1) plus a binary search over the segments for the frame
 * number, with no allocation. For `uvm_pglistalloc`, a run of consecutive
 * pages that is also a chain on its queue is unlinked in one step, and a run
 * given back is spliced in as one chain (zero links), so whole-run moves cost
 * a fill rather than four link updates a page. Callers that take or give back
 * many single pages at once (the page cache) have batch forms that leave the
 * queues as the one-by-one calls would: the pages a queue holds as a chain
 * are popped together, and a stretch of consecutive ids given back is linked
 * with a fill. An allocated page carries an owner byte for the kernel's own
 * bookkeeping.
 *
 * Invariants (verified by {@link Uvm.check}): a page is on a queue exactly when
 * its bitmap bit says free, on the queue of its own free list; the queue
 * links are consistent; the per-list and total free counts equal the number
 * of queued pages; a page held by a page list or by the aggressive
 * contiguous search is never free. The check walks each queue, but takes a
 * block (or chunk) nothing has written (see `physseg.ts`) in one step, as the
 * chain of free pages it must be: it costs O(chunks + pages of the blocks
 * written), and O(pages) when asked to be exhaustive.
 *
 * The page daemon is not part of this file: {@link PageDaemonHooks} is how
 * `uvm_pglistalloc` asks whether waiting could help, waits, and kicks it. The
 * default hooks have nothing reclaimable and wait for any page to be freed.
 *
 * @module
 */

import { checkInteger, describe, KernelError } from "./errors.ts";
import { INT_MAX } from "../machine/bits.ts";
import {
  BLOCK_PAGES,
  CHUNK_PAGES,
  chunkOf,
  PG_FREE,
  PG_PGLCA,
  PG_PGLIST,
  PhysMem,
  type PhysSegInfo,
  type PhysSegStrategy,
  popcount32,
  VM_FREELIST_DEFAULT,
  VM_FREELIST_FIRST16,
  VM_FREELIST_FIRST4G,
  VM_NFREELIST,
} from "./physseg.ts";
import { PglistState } from "./pglist_state.ts";
import type { PageFrames } from "./pdaemon.ts";

/** `uvm_pagealloc` flag: the caller may dip into the kernel's reserve. */
export const UVM_PGA_USERESERVE = 0x01;
/** `uvm_pagealloc` flag: the caller is the page daemon (may use its reserve). */
export const UVM_PGA_PAGEDAEMON = 0x02;
/** `uvm_pagealloc` flag: with a given free list, fall back to all lists in order. */
export const UVM_PGA_FALLBACK = 0x04;

/** What `uvm_pglistalloc` needs from the page daemon. */
export interface PageDaemonHooks {
  /** `uvm_reclaimable()`: could the page daemon free anything by evicting pages? */
  reclaimable(): boolean;
  /** `uvm_wait()`: resolves once the daemon freed pages; rejects when `signal` aborts. */
  wait(signal?: AbortSignal): Promise<void>;
  /** `uvm_kick_pdaemon()`: wake the daemon if memory is short. Must not free pages synchronously. */
  kick(): void;
}

/**
 * Watches pages change hands, so that a run can be written as a pglist
 * replay trace (the kernel's `--record-pglist`). Every call is made after
 * the change it reports.
 */
export interface UvmTracer {
  /** Frame `pfn` left the free lists one at a time (uvm_pagealloc, a claim). */
  pageTaken(pfn: number): void;
  /** Frame `pfn` came back one at a time (uvm_pagefree). */
  pageGiven(pfn: number): void;
  /**
   * One search of uvm_pglistalloc as a call with waitok false makes it: the
   * request, and the frames it chose in list order, or null when it failed.
   * `kept` lists the frames a failed search took that its caller keeps (a
   * waiting simple request holds them across its sleep); otherwise null.
   */
  search(
    size: number,
    low: number,
    high: number,
    alignment: number,
    boundary: number,
    nsegs: number,
    pfns: readonly number[] | null,
    kept: readonly number[] | null,
  ): void;
  /**
   * A list was handed to the caller: its frames are those of the last
   * successful search when `fromSearch`, plus any kept before; otherwise they
   * were all taken one at a time (the aggressive contiguous path).
   */
  listMade(list: object, fromSearch: boolean): void;
  /** uvm_pglistfree of `list`, whose frames in list order are `pfns`. */
  listFreed(list: object, pfns: readonly number[]): void;
}

/** Options of a new {@link Uvm}. */
export interface UvmOptions {
  /** Bytes per page, a power of two (default 4096). */
  pageSize?: number;
  /**
   * Free pages kept for the page daemon (`uvmexp.reserve_pagedaemon`, an
   * `int`: at most 2^31 - 1; default 0).
   */
  reservePagedaemon?: number;
  /** Free pages kept for the kernel (`uvmexp.reserve_kernel`, an `int` as well; default 0). */
  reserveKernel?: number;
  /** The order `uvm_pglistalloc` searches segments in (default `bsearch`). */
  physseg?: PhysSegStrategy;
}

/** A RAM range in bytes, as a firmware memory map reports it. */
export interface RamRegion {
  /** First byte. */
  base: number;
  /** Length in bytes. */
  size: number;
}

/**
 * What this folder's allocators reach of a {@link Uvm} beyond its public
 * methods: the page array and the free-queue moves that `uvm_pglistalloc`
 * and `uvm_pglistfree` are made of. The package does not export it.
 */
export interface UvmInside {
  /** The segments and the page array. */
  readonly physmem: PhysMem;
  /** What `uvm_pglistalloc` keeps between calls (its lock and scratch). */
  readonly pglist: PglistState;
  /**
   * Takes free page `id` off its queue and marks it busy, counting it (the
   * caller has checked it is free). Its own links stay as they were, so that
   * {@link UvmInside.untakeFree} can put it back.
   */
  takeFree(id: number): void;
  /**
   * Takes the free pages whose bits are set in `bits` out of bitmap word `w`
   * (all free, so all of one segment), giving them the flags `flag`.
   */
  takeFreeBits(w: number, bits: number, flag: number): void;
  /**
   * Takes the free pages `[first, first + n)` (of one segment), flagging them
   * `flag`. Returns true when they were taken as one chain (`first + n - 1`
   * down to `first` on their queue): their links then stay so while they are
   * held, and {@link putFreeRun} may say so.
   */
  takeFreeRun(first: number, n: number, flag: number): boolean;
  /**
   * Undoes the take of page `id`, putting it back exactly where it was in its
   * queue. Valid only for the most recent take not yet undone, with no other
   * queue change since (a refused call undoes its takes newest first).
   */
  untakeFree(id: number): void;
  /**
   * Puts the allocated pages `[a, b)` (of one segment) back at the head of
   * their free list as if freed one by one upward, and wakes waiters.
   * `linked`: they were taken as one chain by {@link takeFreeRun} (which said
   * so) and held since, so their links need no rewriting.
   */
  putFreeRun(a: number, b: number, linked: boolean): void;
  /** Puts allocated page `id` at the head of its queue and wakes waiters (the caller has checked it). */
  putFree(id: number): void;
  /** {@link Uvm.pageAlloc} returning the page id, or -1. */
  pageAllocId(freeList?: number, flags?: number): number;
  /** {@link Uvm.pageFree} of page `id`. */
  pageFreeId(id: number): void;
}

let insideOf: (uvm: Uvm) => UvmInside;

/** The insides of `uvm`, for this folder's allocators. */
export function uvmInside(uvm: Uvm): UvmInside {
  return insideOf(uvm);
}

/**
 * The physical page allocator: segments, page array, free queues, counts,
 * reserves and page-daemon hooks. Frames are named by page frame number.
 */
export class Uvm {
  /** The segments and the page array. */
  readonly #pm: PhysMem;
  /** Bytes per page. */
  readonly pageSize: number;
  /** `uvmexp.reserve_pagedaemon`. */
  reservePagedaemon: number;
  /** `uvmexp.reserve_kernel`. */
  reserveKernel: number;
  /** The page daemon's hooks (replace them to plug a daemon in). */
  hooks: PageDaemonHooks;
  /** Who watches pages change hands (null: nobody). */
  tracer: UvmTracer | null = null;
  /** What `uvm_pglistalloc` keeps between calls on this allocator (its lock and scratch). */
  readonly #pglist: PglistState;

  readonly #inside: UvmInside;

  static {
    insideOf = (uvm) => uvm.#inside;
  }

  #free = 0;
  #freeByList = new Float64Array(VM_NFREELIST);
  #waiters: (() => void)[] = [];

  /** Creates an allocator with no memory; see {@link UvmOptions}. */
  constructor(options?: UvmOptions) {
    if (options === undefined) options = {};
    const pageSize = options.pageSize ?? 4096;
    this.reservePagedaemon = checkInteger(
      "reserve_pagedaemon",
      options.reservePagedaemon ?? 0,
      0,
      INT_MAX,
    );
    this.reserveKernel = checkInteger("reserve_kernel", options.reserveKernel ?? 0, 0, INT_MAX);
    this.#pm = new PhysMem(pageSize, options.physseg ?? "bsearch");
    this.pageSize = pageSize;
    this.#pglist = new PglistState(pageSize);
    for (let h = 0; h < VM_NFREELIST; h++) {
      this.#pm.setNext(h, h);
      this.#pm.setPrev(h, h);
    }
    this.hooks = {
      reclaimable: () => false,
      wait: (signal?: AbortSignal) => this.waitForFree(signal),
      kick: () => {},
    };
    this.#inside = {
      physmem: this.#pm,
      pglist: this.#pglist,
      takeFree: (id) => this.#takeFree(id),
      takeFreeBits: (w, bits, flag) => this.#takeFreeBits(w, bits, flag),
      takeFreeRun: (first, n, flag) => this.#takeFreeRun(first, n, flag),
      untakeFree: (id) => this.#untakeFree(id),
      putFreeRun: (a, b, linked) => this.#putFreeRun(a, b, linked),
      putFree: (id) => this.#putFree(id),
      pageAllocId: (freeList, flags) => this.#pageAllocId(freeList, flags),
      pageFreeId: (id) => this.#pageFreeId(id),
    };
  }

  /** The order `uvm_pglistalloc` searches segments in (`VM_PHYSSEG_STRAT`). */
  get strategy(): PhysSegStrategy {
    return this.#pm.strategy;
  }

  /**
   * The frames of a page cache that names its pages by page id (see
   * {@link PageFrames}): it takes pages as `uvm_pagealloc` from any free
   * list would, giving each the owner byte `owner`, and gives them back as
   * `uvm_pagefree` would, many at a time.
   */
  cacheFrames(owner: number): PageFrames {
    checkInteger("owner", owner, 0, 255);
    const free = () => this.#free;
    const pm = this.#pm;
    return {
      get freePages() {
        return free();
      },
      get handleLimit() {
        return pm.nids;
      },
      allocCachePages: (out, at, max) => this.#pageAllocIds(out, at, max, owner),
      freeCachePages: (ids, at, n) => this.#pageFreeIds(ids, at, n),
    };
  }

  /**
   * `uvm_page_physload`: frames `[start, end)` exist, `[availStart, availEnd)`
   * of them are free, all on `freeList`. Refuses (changing nothing) bad
   * bounds, an unknown free list and an overlap with a loaded segment.
   */
  physload(
    start: number,
    end: number,
    availStart: number,
    availEnd: number,
    freeList: number,
  ): void {
    const pm = this.#pm;
    const s = pm.plug(start, end, availStart, availEnd, freeList);
    const n = availEnd - availStart;
    if (n === 0) return;
    const bottom = availStart + pm.segIdOffset[s]!;
    const top = bottom + n - 1;
    const h = freeList;
    const first = pm.nextOf(h);
    pm.setNext(h, top);
    pm.setPrev(top, h);
    pm.setNext(bottom, first);
    pm.setPrev(first, bottom);
    this.#free += n;
    this.#freeByList[freeList]! += n;
  }

  /** Number of segments. */
  get segmentCount(): number {
    return this.#pm.nsegs;
  }

  /** A copy of segment `i` (segments in ascending address order). */
  segment(i: number): PhysSegInfo {
    return this.#pm.segment(i);
  }

  /** Free pages in all (`uvm_availmem`) or on one free list. */
  freeCount(freeList?: number): number {
    if (freeList === undefined) return this.#free;
    checkInteger("freelist", freeList, 0, VM_NFREELIST - 1);
    return this.#freeByList[freeList]!;
  }

  /** Total free pages (`uvm_availmem`). */
  get free(): number {
    return this.#free;
  }

  /** True when frame `pfn` is managed and free. */
  isFree(pfn: number): boolean {
    const id = this.#pm.idOf(pfn);
    return id >= 0 && this.#pm.isFreeId(id);
  }

  /**
   * The free frames as runs `[firstPfn, count]` in ascending order, runs of
   * adjacent segments merged. Costs O(chunks + pages touched), not O(pages).
   */
  freeRuns(): [number, number][] {
    return this.#pm.freeRuns();
  }

  /** True when frame `pfn` belongs to a loaded segment. */
  isManaged(pfn: number): boolean {
    return this.#pm.idOf(pfn) >= 0;
  }

  /** The flags (`PG_*`) of managed frame `pfn`: {@link PG_FREE} when it is free. */
  pageFlags(pfn: number): number {
    const id = this.#id("pfn", pfn);
    return this.#pm.flagsOf(id) | (this.#pm.isFreeId(id) ? PG_FREE : 0);
  }

  /** The owner byte of managed frame `pfn` (0 on a free page). */
  owner(pfn: number): number {
    return this.#pm.ownerOf(this.#id("pfn", pfn));
  }

  /**
   * Sets the owner byte (0 to 255) of an allocated frame: the kernel's own
   * mark, e.g. "wired kernel page" or "page-cache page". Freeing clears it.
   */
  setOwner(pfn: number, owner: number): void {
    const id = this.#id("pfn", pfn);
    checkInteger("owner", owner, 0, 255);
    if (this.#pm.isFreeId(id)) {
      throw new KernelError("EINVAL", `setOwner: page ${describe(pfn)} is free`);
    }
    this.#pm.setOwner(id, owner);
  }

  /**
   * `uvm_pagealloc`: takes one free page and returns its frame number, or -1
   * when none can be had. With `freeList` -1 the free lists are tried in order
   * 0 to 5; otherwise only `freeList` (then all, with {@link UVM_PGA_FALLBACK}).
   * Fails while free pages are at or below `reserveKernel` (unless
   * {@link UVM_PGA_USERESERVE}) or `reservePagedaemon` (unless
   * {@link UVM_PGA_PAGEDAEMON}). Kicks the page daemon. O(1) plus the frame lookup.
   */
  pageAlloc(freeList?: number, flags?: number): number {
    if (freeList === undefined) freeList = -1;
    if (flags === undefined) flags = 0;
    const id = this.#pageAllocId(freeList, flags);
    return id < 0 ? -1 : this.#pm.pfnOf(id);
  }

  /** {@link pageAlloc} returning the page id. */
  #pageAllocId(freeList?: number, flags?: number): number {
    if (freeList === undefined) freeList = -1;
    if (flags === undefined) flags = 0;
    if (
      freeList !== -1 && !(freeList >= 0 && freeList < VM_NFREELIST && (freeList | 0) === freeList)
    ) {
      checkInteger("freelist", freeList, 0, VM_NFREELIST - 1);
    }
    if (!(flags >= 0 && flags <= 7 && (flags | 0) === flags)) checkInteger("flags", flags, 0, 7);
    this.hooks.kick();
    const free = this.#free;
    if (
      (free <= this.reserveKernel && (flags & UVM_PGA_USERESERVE) === 0) ||
      (free <= this.reservePagedaemon && (flags & UVM_PGA_PAGEDAEMON) === 0)
    ) {
      return -1;
    }
    let id = -1;
    if (freeList !== -1) {
      const head = this.#pm.nextOf(freeList);
      if (head !== freeList) id = head;
      else if ((flags & UVM_PGA_FALLBACK) === 0) return -1;
    }
    for (let h = 0; id < 0 && h < VM_NFREELIST; h++) {
      const head = this.#pm.nextOf(h);
      if (head !== h) id = head;
    }
    if (id < 0) return -1;
    this.#takeFree(id);
    this.tracer?.pageTaken(this.#pm.pfnOf(id));
    return id;
  }

  /**
   * `uvm_pagealloc` (any free list) up to `max` times, for a caller that
   * wants many pages at once: writes the page ids to `out[at ..]`, gives each
   * page the owner byte `owner`, and kicks the page daemon once, after the
   * last. Returns how many pages it took (it stops where `uvm_pagealloc`
   * would fail). The page cache fills itself so ({@link cacheFrames}).
   */
  #pageAllocIds(out: Int32Array | Float64Array, at: number, max: number, owner?: number): number {
    if (owner === undefined) owner = 0;
    checkInteger("at", at, 0, out.length);
    checkInteger("max", max, 0, out.length - at);
    checkInteger("owner", owner, 0, 255);
    const pm = this.#pm;
    const floor = Math.max(this.reserveKernel, this.reservePagedaemon);
    let k = 0;
    while (k < max && this.#free > floor) {
      let h = 0;
      while (pm.nextOf(h) === h) h++;
      // The queue's first pages, as far as they chain downward, go at once.
      const top = pm.nextOf(h);
      const n = pm.chainLength(top, Math.min(max - k, this.#free - floor));
      const bottom = top - n + 1;
      const after = pm.nextOf(bottom);
      pm.setNext(h, after);
      pm.setPrev(after, h);
      pm.markBusyRange(bottom, top + 1);
      if (owner !== 0) pm.setOwnerRun(bottom, top + 1, owner);
      this.#free -= n;
      this.#freeByList[h]! -= n;
      for (let i = 0; i < n; i++) out[at + k + i] = top - i;
      if (this.tracer !== null) {
        for (let i = 0; i < n; i++) this.tracer.pageTaken(pm.pfnOf(top - i));
      }
      k += n;
    }
    this.hooks.kick();
    return k;
  }

  /**
   * `uvm_pagefree` of the pages `ids[at .. at + n)` in that order, for a
   * caller that gives many back at once: the same queues as `n` calls make,
   * but a run of consecutive ids costs a fill, not four link updates a page.
   * Refuses (changing nothing) a page that is free, named twice or held by a
   * page list. The page cache reclaims so ({@link cacheFrames}).
   */
  #pageFreeIds(ids: Int32Array | Float64Array, at: number, n: number): void {
    checkInteger("at", at, 0, ids.length);
    checkInteger("n", n, 0, ids.length - at);
    const pm = this.#pm;
    // Mark every page free first: a page free already (or twice) stops the
    // call, which marks back what it marked.
    for (let k = at; k < at + n; k++) {
      const id = ids[k]!;
      const why = pm.segmentOfId(id) < 0
        ? "is no page"
        : pm.isFreeId(id)
        ? "is free (or named twice)"
        : (pm.flagsOf(id) & (PG_PGLIST | PG_PGLCA)) !== 0
        ? "belongs to a page list; free the list"
        : null;
      if (why !== null) {
        for (let j = at; j < k; j++) pm.markBusy(ids[j]!);
        throw new KernelError("BADFREE", `uvm_pagefree: page id ${describe(id)} ${why}`);
      }
      pm.markFree(id);
    }
    let k = at;
    while (k < at + n) {
      // The longest stretch of ids stepping by one, up or down, from k.
      const first = ids[k]!;
      let len = 1;
      const step = k + 1 < at + n ? ids[k + 1]! - first : 0;
      if (step === 1 || step === -1) {
        while (k + len < at + n && ids[k + len]! === first + len * step) len++;
      }
      const h = pm.freeListOf(first);
      const head = pm.nextOf(h);
      if (len === 1) {
        pm.setNext(h, first);
        pm.setPrev(head, first);
        pm.relink(first, head, h);
      } else if (step === 1) {
        // Freed upward, each in front: the queue reads top, ..., first.
        const top = first + len - 1;
        pm.freshenRun(first, top + 1, false);
        pm.setNext(h, top);
        pm.setPrev(top, h);
        pm.setNext(first, head);
        pm.setPrev(head, first);
      } else {
        // Freed downward, each in front: the queue reads low, ..., first.
        const low = first - len + 1;
        pm.ascendRun(low, first + 1);
        pm.setNext(h, low);
        pm.setPrev(low, h);
        pm.setNext(first, head);
        pm.setPrev(head, first);
      }
      this.#freeByList[h]! += len;
      this.#free += len;
      if (this.tracer !== null) {
        for (let j = 0; j < len; j++) this.tracer.pageGiven(pm.pfnOf(ids[k + j]!));
      }
      k += len;
    }
    if (n > 0 && this.#waiters.length !== 0) this.#wakeup();
  }

  /**
   * `uvm_pagefree`: puts allocated frame `pfn` back at the head of its free
   * list. Refuses a free page, an unmanaged frame and a page that belongs to
   * a page list (those go back with `pglistFree`).
   */
  pageFree(pfn: number): void {
    this.#pageFreeId(this.#id("pfn", pfn));
  }

  /** {@link pageFree} of page `id`, which must be a frame. */
  #pageFreeId(id: number): void {
    const pm = this.#pm;
    if (pm.isFreeId(id)) {
      throw new KernelError(
        "BADFREE",
        `uvm_pagefree: page ${describe(pm.pfnOf(id))} is already free`,
      );
    }
    if ((pm.flagsOf(id) & (PG_PGLIST | PG_PGLCA)) !== 0) {
      throw new KernelError(
        "BADFREE",
        `uvm_pagefree: page ${describe(pm.pfnOf(id))} belongs to a page list; free the list`,
      );
    }
    this.#putFree(id);
    this.tracer?.pageGiven(pm.pfnOf(id));
  }

  /**
   * Takes the given free frame off its free list, as if something else had
   * allocated it (firmware, the kernel image, a device). Refuses a frame that
   * is unmanaged or not free. Moves no start hint.
   */
  pageClaim(pfn: number): void {
    const id = this.#id("pfn", pfn);
    if (!this.#pm.isFreeId(id)) {
      throw new KernelError("EBUSY", `claim: page ${describe(pfn)} is not free`);
    }
    this.#takeFree(id);
    this.tracer?.pageTaken(pfn);
  }

  /**
   * Resolves when a page is next freed; rejects with an `EINTR`
   * {@link KernelError} when `signal` aborts first. The default `hooks.wait`.
   */
  waitForFree(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new KernelError("EINTR", "wait for free pages aborted"));
        return;
      }
      const onAbort = () => {
        const i = this.#waiters.indexOf(wake);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new KernelError("EINTR", "wait for free pages aborted"));
      };
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(wake);
    });
  }

  /**
   * Takes free page `id` off its queue and marks it busy, counting it. For
   * mm/ (the caller has checked it is free). Its own links stay as they were,
   * so that `#untakeFree` can put it back.
   */
  #takeFree(id: number): void {
    const pm = this.#pm;
    const c = chunkOf(id);
    const i = id - c * CHUNK_PAGES;
    const p = id + 1 + pm.prev[c]![i]!;
    const n = id - 1 + pm.next[c]![i]!;
    pm.setNext(p, n);
    pm.setPrev(n, p);
    pm.markBusy(id);
    this.#free--;
    this.#freeByList[pm.freeListOf(id)]!--;
  }

  /**
   * Takes the free pages whose bits are set in `bits` out of bitmap word `w`
   * (all free, so all of one segment), giving them the flags `flag`.
   */
  #takeFreeBits(w: number, bits: number, flag: number): void {
    const pm = this.#pm;
    const base = w * 32;
    const low = bits & -bits;
    if ((bits & (bits + low)) === 0) {
      // One run of bits: unlink it as a block when it is a chain.
      this.#unlinkRun(base + 31 - Math.clz32(low), base + 32 - Math.clz32(bits), flag);
    } else {
      let b = bits;
      while (b !== 0) {
        const id = base + 31 - Math.clz32(b & -b);
        b &= b - 1;
        const p = pm.prevOf(id);
        const n = pm.nextOf(id);
        pm.setNext(p, n);
        pm.setPrev(n, p);
        pm.setFlags(id, flag);
      }
    }
    pm.markBusyBits(w, bits);
    const k = popcount32(bits);
    this.#free -= k;
    this.#freeByList[pm.freeListOf(base + 31 - Math.clz32(low))]! -= k;
  }

  /** Takes the free pages `[first, first + n)` (of one segment), flagging them `flag`; true for a chain. */
  #takeFreeRun(first: number, n: number, flag: number): boolean {
    const pm = this.#pm;
    const chain = this.#unlinkRun(first, first + n, flag);
    pm.markBusyRange(first, first + n);
    this.#free -= n;
    this.#freeByList[pm.freeListOf(first)]! -= n;
    return chain;
  }

  /**
   * Unlinks free pages `[a, b)` from their queue and flags them: at once when
   * they form the chain `b-1 -> ... -> a` there, else one by one upward. Either
   * way each page keeps its own links, so `#untakeFree` newest first
   * (from `b-1` down) puts them back. Returns true when they were a chain.
   */
  #unlinkRun(a: number, b: number, flag: number): boolean {
    const pm = this.#pm;
    const chain = pm.isChain(a, b);
    if (chain) {
      const p = pm.prevOf(b - 1);
      const n = pm.nextOf(a);
      pm.setNext(p, n);
      pm.setPrev(n, p);
    } else {
      for (let id = a; id < b; id++) {
        const p = pm.prevOf(id);
        const n = pm.nextOf(id);
        pm.setNext(p, n);
        pm.setPrev(n, p);
      }
    }
    pm.setFlagsRun(a, b, flag);
    return chain;
  }

  /**
   * Puts the allocated pages `[a, b)` (of one segment) back at the head of
   * their free list as if freed one by one upward: each lands in front of the
   * one before, so they form the chain `b-1 -> ... -> a`, which the relative
   * links express with zeros (`linked`: they do already).
   */
  #putFreeRun(a: number, b: number, linked: boolean): void {
    const pm = this.#pm;
    const h = pm.freeListOf(a);
    const top = b - 1;
    const first = pm.nextOf(h);
    pm.freshenRun(a, b, linked);
    pm.setNext(h, top);
    pm.setPrev(top, h);
    pm.setNext(a, first);
    pm.setPrev(first, a);
    pm.markFreeRange(a, b);
    this.#freeByList[h]! += b - a;
    this.#free += b - a;
    if (this.#waiters.length !== 0) this.#wakeup();
  }

  /**
   * Undoes `#takeFree` of page `id`, putting it back exactly where it was
   * in its queue. Valid only for the most recent take not yet undone, with no
   * other queue change since (a refused call undoes its takes newest first).
   */
  #untakeFree(id: number): void {
    const pm = this.#pm;
    const p = pm.prevOf(id);
    const n = pm.nextOf(id);
    pm.setNext(p, id);
    pm.setPrev(n, id);
    pm.setFlags(id, 0);
    pm.setOwner(id, 0);
    pm.markFree(id);
    this.#free++;
    this.#freeByList[pm.freeListOf(id)]!++;
  }

  /**
   * Puts allocated page `id` at the head of its free list's queue and wakes
   * waiters (the caller has checked it is not free).
   */
  #putFree(id: number): void {
    const pm = this.#pm;
    const h = pm.freeListOf(id);
    const first = pm.nextOf(h);
    pm.setNext(h, id);
    pm.setPrev(first, id);
    pm.relink(id, first, h);
    pm.markFree(id);
    this.#free++;
    this.#freeByList[h]!++;
    if (this.#waiters.length !== 0) this.#wakeup();
  }

  /**
   * Verifies every invariant (see the module comment and
   * the page array's own check); throws a `CORRUPT` {@link KernelError} naming the
   * first one broken. Costs O(chunks + pages touched); `exhaustive` walks
   * every page of every queue and reads every chunk (O(pages)).
   */
  check(exhaustive?: boolean): void {
    if (exhaustive === undefined) exhaustive = false;
    const pm = this.#pm;
    pm.check(exhaustive);
    const fail = (what: string): never => {
      throw new KernelError("CORRUPT", `uvm check: ${what}`);
    };
    let total = 0;
    const busy = pm.busyMap;
    for (let h = 0; h < VM_NFREELIST; h++) {
      const count = this.#freeByList[h]!;
      let n = 0;
      let prev = h;
      let id = pm.nextOf(h);
      while (id !== h) {
        const c = chunkOf(id);
        const first = pm.chunkFirstFrame(c);
        const end = pm.chunkEndFrame(c);
        if (!(id >= first && id < end)) fail(`queue ${h} links to id ${id}, no frame`);
        if (pm.freeListOf(id) !== h) fail(`page id ${id} on queue ${h} of another list`);
        const lo = c * CHUNK_PAGES;
        const dirty = pm.chunkDirty[c]!;
        const k = (id - lo) >>> 11;
        const blo = lo + k * BLOCK_PAGES;
        if (!exhaustive && ((dirty >>> k) & 1) === 0) {
          // Nothing wrote this block (or chunk): its pages are free and chained
          // downward to its first id, whose next page is the one below it.
          if (pm.prevOf(id) !== prev) fail(`back link of page id ${id}`);
          const bottom = dirty === 0 ? lo : blo;
          n += id - bottom + 1;
          if (n > count) fail(`queue ${h} holds more than the ${count} pages counted, or loops`);
          prev = bottom;
          id = bottom - 1;
          continue;
        }
        // The pages of this block, one by one, while the queue stays in it.
        // (A free page's flags and owner are the page array's check.)
        const nx = pm.next[c]!;
        const pv = pm.prev[c]!;
        const w0 = lo / 32;
        const from = Math.max(first, blo) - lo;
        const to = Math.min(end, blo + BLOCK_PAGES) - lo;
        let i = id - lo;
        while (i >= from && i < to) {
          if ((busy[w0 + (i >>> 5)]! & (1 << (i & 31))) !== 0) {
            fail(`queued page id ${lo + i} is not free`);
          }
          if (i + 1 + pv[i]! !== prev - lo) fail(`back link of page id ${lo + i}`);
          if (++n > count) fail(`queue ${h} holds more than the ${count} pages counted, or loops`);
          prev = lo + i;
          i = i - 1 + nx[i]!;
        }
        id = lo + i;
      }
      if (pm.prevOf(h) !== prev) fail(`queue ${h} tail link`);
      if (n !== count) fail(`free list ${h} counts ${count}, holds ${n}`);
      total += n;
    }
    if (total !== this.#free) fail(`free count ${this.#free} != ${total}`);
    // Queued pages are distinct free frames (no queue loops), as many as the
    // bitmap has: so every free frame is queued.
    const byList = new Float64Array(VM_NFREELIST);
    for (let c = 1; c < pm.nchunks; c++) {
      if (pm.chunkLoad[c]! >= 0) byList[pm.freeListOf(c * CHUNK_PAGES)]! += pm.freeInChunk(c);
    }
    for (let h = 0; h < VM_NFREELIST; h++) {
      if (byList[h] !== this.#freeByList[h]) {
        fail(
          `free list ${h}: the bitmap has ${byList[h]} free pages, the queue ${
            this.#freeByList[h]
          }`,
        );
      }
    }
  }

  // ---- internals ----------------------------------------------------------

  #id(name: string, pfn: number): number {
    checkInteger(name, pfn);
    const id = this.#pm.idOf(pfn);
    if (id < 0) {
      throw new KernelError("EINVAL", `${name} ${describe(pfn)} is in no physical segment`);
    }
    return id;
  }

  #wakeup(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Loads a firmware RAM map the way x86 `init_x86_vm` does: every region (in
 * bytes, trimmed inward to whole pages) is cut at 16 MiB and 4 GiB, the part
 * below 16 MiB going to {@link VM_FREELIST_FIRST16}, the part below 4 GiB to
 * {@link VM_FREELIST_FIRST4G} and the rest to {@link VM_FREELIST_DEFAULT}.
 * `availRegions` (default: all of `regions`) says which bytes start free; a
 * piece holding several of them is cut between them, since a segment has one
 * free range. Refuses (loading nothing) bad or overlapping regions. Returns
 * the number of segments loaded.
 */
export function loadRam(
  uvm: Uvm,
  regions: readonly RamRegion[],
  availRegions: readonly RamRegion[] = regions,
): number {
  const ps = uvm.pageSize;
  const toFrames = (r: RamRegion, name: string, i: number): [number, number] => {
    if (typeof r !== "object" || r === null) {
      throw new KernelError("EINVAL", `${name}[${i}] must be {base, size}, got ${describe(r)}`);
    }
    const base = checkInteger(`${name}[${i}].base`, r.base);
    const size = checkInteger(`${name}[${i}].size`, r.size, 0, 2 ** 53 - base);
    return [Math.ceil(base / ps), Math.floor((base + size) / ps)];
  };
  if (!Array.isArray(regions)) throw new KernelError("EINVAL", `regions must be an array`);
  if (!Array.isArray(availRegions)) {
    throw new KernelError("EINVAL", `availRegions must be an array`);
  }
  const avail = availRegions.map((r, i) => toFrames(r, "availRegions", i))
    .filter(([a, b]) => a < b)
    .sort((x, y) => x[0] - y[0]);
  const cut16 = Math.floor(16 * 2 ** 20 / ps);
  const cut4g = Math.floor(2 ** 32 / ps);
  const plan: [number, number, number, number, number][] = [];
  regions.forEach((r, i) => {
    const [start, end] = toFrames(r, "regions", i);
    const pieces: [number, number, number][] = [
      [start, Math.min(end, cut16), VM_FREELIST_FIRST16],
      [Math.max(start, cut16), Math.min(end, cut4g), VM_FREELIST_FIRST4G],
      [Math.max(start, cut4g), end, VM_FREELIST_DEFAULT],
    ];
    for (const [s, e, fl] of pieces) {
      if (s >= e) continue;
      const inside = avail
        .map(([a, b]): [number, number] => [Math.max(a, s), Math.min(b, e)])
        .filter(([a, b]) => a < b);
      if (inside.length === 0) {
        plan.push([s, e, s, s, fl]);
        continue;
      }
      for (let k = 0; k < inside.length; k++) {
        const segStart = k === 0 ? s : inside[k]![0];
        const segEnd = k === inside.length - 1 ? e : inside[k + 1]![0];
        plan.push([segStart, segEnd, inside[k]![0], inside[k]![1], fl]);
      }
    }
  });
  const sorted = plan.slice().sort((x, y) => x[0] - y[0]);
  for (let i = 0; i < sorted.length; i++) {
    insideOf(uvm).physmem.validate(...sorted[i]!);
    if (i > 0 && sorted[i - 1]![1] > sorted[i]![0]) {
      throw new KernelError(
        "EINVAL",
        `loadRam: frames [${sorted[i - 1]![0]}, ${sorted[i - 1]![1]}) and [${sorted[i]![0]}, ${
          sorted[i]![1]
        }) overlap`,
      );
    }
  }
  const segs = uvm.segmentCount;
  let ids = 0;
  for (const p of plan) ids += insideOf(uvm).physmem.idsFor(p[0], p[1] - p[0]);
  insideOf(uvm).physmem.reserve(ids);
  for (const p of plan) uvm.physload(...p);
  return uvm.segmentCount - segs;
}
