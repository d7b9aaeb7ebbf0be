/**
 * A plain page-by-page port of NetBSD's uvm_pglist.c (rev 1.89), kept as the
 * baseline that the fast allocator of `pglist.ts` is measured and tested
 * against.
 *
 * Theory. Nothing clever: a segment is an object with a byte per page (1 =
 * free), free pages are counted, and `uvm_pglistalloc_c_ps` /
 * `uvm_pglistalloc_s_ps` are transcribed statement for statement, with the
 * seed's C integer types emulated: `signed int` candidates and limits wrap to
 * 32 bits (`| 0`), `uimin`/`uimax` work on `u_int` (`>>> 0`), `paddr_t` is a
 * plain (exact) number and the hint is a `u_int`. A page access outside its
 * segment (undefined behaviour in NetBSD) and a failed `KASSERT` throw an
 * `EFAULT` error after giving back the pages taken and restoring the hints,
 * so that a differential test sees them as refusals. Segments are searched
 * as NetBSD's `VM_PHYSSEG_STRAT` says: by address (BSEARCH), or through an
 * array kept largest first and walked from its end (BIGFIRST). Cost:
 * O(pages scanned) per request, as NetBSD's is.
 *
 * @module
 */

import { KernelError } from "./errors.ts";
import type { PhysSegStrategy } from "./physseg.ts";

interface RefSeg {
  start: number;
  end: number;
  availStart: number;
  availEnd: number;
  freeList: number;
  hint: number;
  free: Uint8Array;
}

const NFREELIST = 6;

function u32(x: number): number {
  return x >>> 0;
}

function i32(x: number): number {
  return x | 0;
}

/** NetBSD's `roundup2` on (exact) integers. */
function roundup2(x: number, m: number): number {
  return Math.ceil(x / m) * m;
}

/** NetBSD's allocator over plain per-segment page bytes. */
export class ReferencePglist {
  /** Bytes per page. */
  readonly pageSize: number;
  /** `log2(pageSize)`. */
  readonly pageShift: number;
  /** `uvmexp.reserve_pagedaemon`. */
  reservePagedaemon: number;
  /** `uvmexp.reserve_kernel`. */
  reserveKernel: number;
  /** Segments sorted by start. */
  readonly segs: RefSeg[] = [];
  /** The order segments are searched in. */
  readonly strategy: PhysSegStrategy;
  /** Under BIGFIRST, NetBSD's segment array: largest first, ties in load order. */
  readonly #bySize: RefSeg[] = [];
  /** Free pages. */
  nfree = 0;

  /** An empty allocator. */
  constructor(
    pageSize?: number,
    reservePagedaemon?: number,
    reserveKernel?: number,
    strategy?: PhysSegStrategy,
  ) {
    if (pageSize === undefined) pageSize = 4096;
    if (reservePagedaemon === undefined) reservePagedaemon = 0;
    if (reserveKernel === undefined) reserveKernel = 0;
    if (strategy === undefined) strategy = "bsearch";
    this.strategy = strategy;
    this.pageSize = pageSize;
    this.pageShift = Math.log2(pageSize);
    this.reservePagedaemon = reservePagedaemon;
    this.reserveKernel = reserveKernel;
  }

  /** `uvm_page_physload` (no validation beyond what NetBSD does). */
  physload(
    start: number,
    end: number,
    availStart: number,
    availEnd: number,
    freeList: number,
  ): void {
    const free = new Uint8Array(end - start);
    free.fill(1, availStart - start, availEnd - start);
    this.nfree += availEnd - availStart;
    const seg = { start, end, availStart, availEnd, freeList, hint: 0, free };
    let i = this.segs.length;
    while (i > 0 && this.segs[i - 1]!.start > start) i--;
    this.segs.splice(i, 0, seg);
    let j = 0;
    while (
      j < this.#bySize.length && this.#bySize[j]!.end - this.#bySize[j]!.start >= end - start
    ) {
      j++;
    }
    this.#bySize.splice(j, 0, seg);
  }

  /** The segments in the order NetBSD walks them within a free list. */
  #walk(): RefSeg[] {
    return this.strategy === "bsearch" ? this.segs : this.#bySize.slice().reverse();
  }

  #find(pfn: number): RefSeg | undefined {
    return this.segs.find((s) => pfn >= s.start && pfn < s.end);
  }

  /** True when `pfn` is managed and free. */
  isFree(pfn: number): boolean {
    const s = this.#find(pfn);
    return s !== undefined && s.free[pfn - s.start] === 1;
  }

  /** Takes a free page (claim). */
  take(pfn: number): void {
    const s = this.#find(pfn)!;
    s.free[pfn - s.start] = 0;
    this.nfree--;
  }

  /** Frees a page (release, uvm_pagefree). */
  give(pfn: number): void {
    const s = this.#find(pfn)!;
    s.free[pfn - s.start] = 1;
    this.nfree++;
  }

  /** Frees a list's pages (uvm_pglistfree). */
  freeList(pfns: readonly number[]): void {
    for (const p of pfns) this.give(p);
  }

  /** Free runs ascending and hints, as replay's `state` prints them. */
  state(): { free: [number, number][]; hints: number[] } {
    const free: [number, number][] = [];
    for (const s of this.segs) {
      for (let k = 0; k < s.free.length; k++) {
        if (s.free[k] !== 1) continue;
        const pfn = s.start + k;
        const last = free[free.length - 1];
        if (last !== undefined && last[0] + last[1] === pfn) last[1]++;
        else free.push([pfn, 1]);
      }
    }
    return { free, hints: this.segs.map((s) => s.hint) };
  }

  #isFree(s: RefSeg, idx: number): boolean {
    if (idx < 0 || idx >= s.free.length) {
      throw new KernelError("EFAULT", `page index ${idx} outside segment [${s.start}, ${s.end})`);
    }
    return s.free[idx] === 1;
  }

  #add(s: RefSeg, idx: number, rlist: number[]): void {
    s.free[idx] = 0;
    this.nfree--;
    rlist.push(s.start + idx);
  }

  #cPs(
    s: RefSeg,
    num: number,
    low: number,
    high: number,
    alignment: number,
    boundary: number,
    rlist: number[],
  ): number {
    low = Math.floor(low / this.pageSize);
    high = Math.floor(high / this.pageSize);
    if (high <= s.availStart || low >= s.availEnd) return 0;
    alignment = Math.floor(alignment / this.pageSize);
    let candidate = i32(roundup2(Math.max(u32(low), u32(s.availStart + s.hint)), alignment));
    let limit = i32(Math.min(u32(high), u32(s.availEnd)));
    const bpages = Math.floor(boundary / this.pageSize);
    const pagemask = bpages === 0 ? 0 : i32(-bpages);
    let skip = 0;
    let secondPass = false;
    let candidateidx = 0;
    let end = 0;
    let budget = 4 * s.free.length + 4096;
    for (;;) {
      let ok = true;
      if (--budget < 0) throw new KernelError("EFAULT", "c_ps would not end");
      if (i32(candidate + num) > limit) {
        if (s.hint === 0 || secondPass) return 0;
        secondPass = true;
        candidate = i32(roundup2(Math.max(u32(low), u32(s.availStart)), alignment));
        limit = i32(Math.min(u32(limit), u32(s.availStart + s.hint)));
        skip = 0;
        continue;
      }
      if (boundary !== 0 && ((candidate ^ i32(candidate + num - 1)) & pagemask) !== 0) {
        candidate = i32(candidate + num - 1) & pagemask;
        candidate = i32(roundup2(candidate, alignment));
        skip = 0;
        continue;
      }
      candidateidx = i32(candidate - s.start);
      end = i32(candidateidx + num);
      let idx: number;
      for (idx = end - 1; idx >= i32(candidateidx + skip); idx--) {
        if (!this.#isFree(s, idx)) {
          ok = false;
          break;
        }
      }
      if (ok) break;
      let cnt = i32(idx + 1 - candidateidx);
      cnt = i32(roundup2(cnt, alignment));
      skip = i32(num - cnt);
      candidate = i32(candidate + cnt);
    }
    for (let idx = candidateidx; idx < end; idx++) {
      if (!this.#isFree(s, idx)) {
        throw new KernelError("EFAULT", `c_ps would take busy index ${idx}`);
      }
    }
    for (let idx = candidateidx; idx < end; idx++) this.#add(s, idx, rlist);
    s.hint = u32(candidate + num - s.availStart);
    if (s.hint > s.availEnd - s.availStart) throw new KernelError("EFAULT", "c_ps hint assertion");
    return num;
  }

  #sPs(s: RefSeg, num: number, low: number, high: number, rlist: number[]): number {
    low = Math.floor(low / this.pageSize);
    high = Math.floor(high / this.pageSize);
    if (high <= s.availStart || low >= s.availEnd) return 0;
    let todo = num;
    let candidate = i32(Math.max(u32(low), u32(s.availStart + s.hint)));
    let limit = i32(Math.min(u32(high), u32(s.availEnd)));
    let secondPass = false;
    for (;; candidate++) {
      if (candidate >= limit) {
        if (s.hint === 0 || secondPass) {
          candidate = limit - 1;
          break;
        }
        secondPass = true;
        candidate = i32(Math.max(u32(low), u32(s.availStart)));
        limit = i32(Math.min(u32(limit), u32(s.availStart + s.hint)));
        candidate--;
        continue;
      }
      if (!this.#isFree(s, candidate - s.start)) continue;
      this.#add(s, candidate - s.start, rlist);
      if (--todo === 0) break;
    }
    const hint = u32(candidate + 1 - s.availStart);
    if (hint > s.availEnd - s.availStart) throw new KernelError("EFAULT", "s_ps hint assertion");
    s.hint = hint;
    return num - todo;
  }

  /**
   * `uvm_pglistalloc` with `waitok` 0: returns the frames in list order, or
   * `null` for `ENOMEM`; throws `EINVAL`, and `EFAULT` (see the module
   * comment) leaving the state as it was.
   */
  alloc(
    size: number,
    low: number,
    high: number,
    alignment: number,
    boundary: number,
    nsegs: number,
  ): number[] | null {
    const ps = this.pageSize;
    if (alignment < ps) alignment = ps;
    if (boundary !== 0 && boundary < size) throw new KernelError("EINVAL", "boundary below size");
    const num = i32(Math.ceil(size / ps));
    low = roundup2(low, alignment);
    const hints = this.segs.map((s) => s.hint);
    const rlist: number[] = [];
    try {
      let n = num;
      const walk = this.#walk();
      if (i32(nsegs) < num || alignment !== ps || boundary !== 0) {
        if (this.nfree > i32(this.reservePagedaemon + this.reserveKernel)) {
          for (let fl = 0; fl < NFREELIST && n !== 0; fl++) {
            for (const s of walk) {
              if (s.freeList !== fl) continue;
              n -= this.#cPs(s, n, low, high, alignment, boundary, rlist);
              if (n === 0) break;
            }
          }
        }
      } else if (this.nfree > i32(this.reservePagedaemon + this.reserveKernel)) {
        for (let fl = 0; fl < NFREELIST && n !== 0; fl++) {
          for (const s of walk) {
            if (s.freeList !== fl) continue;
            n -= this.#sPs(s, n, low, high, rlist);
            if (n === 0) break;
          }
        }
      }
      if (n !== 0) {
        this.freeList(rlist);
        return null;
      }
      return rlist;
    } catch (e) {
      if (e instanceof KernelError && e.code === "EFAULT") {
        this.freeList(rlist);
        this.segs.forEach((s, i) => s.hint = hints[i]!);
      }
      throw e;
    }
  }
}
