/**
 * `uvm_pglistalloc` and `uvm_pglistfree`: lists of physical pages under
 * address, alignment and boundary constraints, choosing exactly the pages and
 * moving exactly the start hints that NetBSD's uvm_pglist.c (rev 1.89) does.
 *
 * Theory. A request of `size` bytes becomes `num` pages. It takes the
 * contiguous path when it needs one run (`nsegs < num`), an alignment above a
 * page or a boundary; otherwise the simple path, which takes free pages one
 * by one. Both walk the segments in the physical memory's search order (free
 * list 0 first; within a list by ascending address, or smallest first under
 * x86's BIGFIRST) and fail at once when free pages are at or below the two
 * reserves.
 *
 * Contiguous, per segment: candidates are multiples of the alignment, from
 * `roundup(max(low, availStart + hint))` up to `limit = min(high, availEnd)`;
 * when that pass runs out and the hint is not zero, a second pass goes from the
 * segment's start with the limit lowered to the old hint, so a run straddling
 * the hint is found by neither. NetBSD checks a window from its top down and
 * jumps past the highest busy page, rounded to the alignment, or to the
 * boundary a window crosses; every candidate it jumps over is unusable, so it
 * returns the lowest usable candidate of the pass. This file returns that same
 * candidate a word at a time: the highest busy page of a window comes from
 * the free bitmap (`lastBusy`), the next free page after it from `findFree`,
 * and a request of 63 pages or more (which must cover a whole, all-free bitmap
 * word) first jumps to the next such word through the two summary levels. A
 * success takes the window and sets the hint to its end; a failure changes
 * nothing.
 *
 * Simple, per segment: take free pages upward from `max(low, availStart +
 * hint)` to the limit, then (hint not zero) from the segment's start up to the
 * old hint. The hint becomes the page after the last one taken, or the limit
 * of the pass that ran out. A failed request gives its pages back but keeps
 * the hints it moved.
 *
 * NetBSD's C integer types are kept. `uimin`/`uimax` reduce frame numbers
 * modulo 2^32 (a `high` of 2^44 acts as 0) and the hint is a `u_int`. While
 * a segment ends below frame 2^31 (and, contiguous, with the alignment and
 * the request added), every `int` of NetBSD's code holds its exact value and the
 * word-wise search above applies. Past that, a statement-for-statement port
 * with NetBSD's `int` wrap-around runs page by page, so segments anywhere
 * give NetBSD's answer. Where NetBSD's behaviour is undefined (a page
 * read outside its segment, a busy page taken, a search that never ends) or
 * its hint assertion fails (a truncated `high` below a segment's first free
 * frame makes the simple path's hint negative), the request is refused with
 * `EINVAL` and every page and hint it touched is put back exactly: takes are
 * undone newest first, each page relinked where it was (its own links are
 * never overwritten while it is taken), and the hints restored.
 *
 * Waiting (`waitok`): the simple path keeps the pages it got, waits for a free
 * and tries again for the rest; the contiguous path falls back to the
 * aggressive search (allocate pages one by one, marking them `PG_PGLCA`, until
 * the marks complete a suitable run) while the page daemon says something is
 * reclaimable, then frees what it did not use. {@link pglistAllocWait} does
 * that asynchronously, cancellable: an abort gives back the pages held and
 * the hints moved. The synchronous {@link pglistAlloc} with `waitok` throws
 * `WOULDBLOCK` (changing nothing) where NetBSD would sleep.
 *
 * Cost: a contiguous search is O(words scanned + busy runs met); NetBSD's is
 * O(pages scanned). A simple request is O(pages taken + words scanned).
 *
 * @module
 */

import { checkInteger, describe, KernelError, MAX_ADDR } from "./errors.ts";
import { INT_MAX, isPow2 } from "../machine/bits.ts";
import { PG_PGLCA, PG_PGLIST, type PhysMem, popcount32, u32 } from "./physseg.ts";
import { Uvm, uvmInside } from "./page.ts";
import { HintSnapshot, Request, RunList } from "./pglist_state.ts";

const ENOMEM_MESSAGE = "uvm_pglistalloc: no pages satisfy the request";

let listFirst: (list: PageList) => number;
let listCount: (list: PageList) => number;
let listMore: (list: PageList) => readonly number[] | null;
let listLinked: (list: PageList) => boolean;
let markFreed: (list: PageList) => void;
let newList: (
  uvm: Uvm,
  first: number,
  count: number,
  linked: boolean,
  more: number[] | null,
  pages: number,
) => PageList;

/**
 * The pages `uvm_pglistalloc` returned, in list order, kept as runs of
 * consecutive page ids: the first run in two fields (all of a contiguous
 * list), any others as flat pairs. Give them back with {@link PageList.free}
 * (or {@link pglistFree}).
 */
export class PageList {
  readonly #uvm: Uvm;
  /** First page id of the first run. */
  readonly #first: number;
  /** Length of the first run. */
  readonly #count: number;
  /** The first run was taken as one chain, its links untouched since (see {@link RunList.firstLinked}). */
  readonly #linked: boolean;
  /** The other runs as flat pairs (first id, length), or null. */
  readonly #more: readonly number[] | null;
  readonly #pages: number;
  #freed = false;

  static {
    listFirst = (list) => list.#first;
    listCount = (list) => list.#count;
    listMore = (list) => list.#more;
    listLinked = (list) => list.#linked;
    markFreed = (list) => {
      list.#freed = true;
    };
    newList = (uvm, first, count, linked, more, pages) =>
      new PageList(uvm, first, count, linked, more, pages);
  }

  /** Made by the allocator only, over pages already marked `PG_PGLIST`. */
  private constructor(
    uvm: Uvm,
    first: number,
    count: number,
    linked: boolean,
    more: number[] | null,
    pages: number,
  ) {
    this.#uvm = uvm;
    this.#first = first;
    this.#count = count;
    this.#linked = linked;
    this.#more = more;
    this.#pages = pages;
  }

  /** The allocator the pages came from. */
  get uvm(): Uvm {
    return this.#uvm;
  }

  /** Number of pages. */
  get length(): number {
    return this.#pages;
  }

  /** True once the list has been freed. */
  get freed(): boolean {
    return this.#freed;
  }

  /** Frame number of the `i`-th page of the list. */
  pfn(i: number): number {
    checkInteger("i", i, 0, this.#pages - 1);
    const runs = runsOf(this);
    let k = 0;
    while (i >= runs[k + 1]!) {
      i -= runs[k + 1]!;
      k += 2;
    }
    return uvmInside(this.#uvm).physmem.pfnOf(runs[k]! + i);
  }

  /** Frame numbers of all pages, in list order. */
  pfns(): number[] {
    const runs = runsOf(this);
    return pfnsOfRuns(uvmInside(this.#uvm).physmem, runs, runs.length / 2, 0, this.#pages);
  }

  /** The list as runs `[firstPfn, count]` of consecutive frames, in list order. */
  runs(): [number, number][] {
    const pm = uvmInside(this.#uvm).physmem;
    const runs = runsOf(this);
    const out: [number, number][] = [];
    for (let k = 0; k < runs.length; k += 2) {
      const pfn = pm.pfnOf(runs[k]!);
      const n = runs[k + 1]!;
      const last = out[out.length - 1];
      if (last !== undefined && last[0] + last[1] === pfn) last[1] += n;
      else out.push([pfn, n]);
    }
    return out;
  }

  /** `uvm_pglistfree`: puts every page back on its free list. */
  free(): void {
    pglistFree(this.#uvm, this);
  }
}

/** The runs of `list` as flat pairs (first id, length), in list order. */
function runsOf(list: PageList): number[] {
  const more = listMore(list);
  const runs = [listFirst(list), listCount(list)];
  if (more !== null) { for (const x of more) runs.push(x); }
  return runs;
}

/** Frames of pages `[from, to)` (list positions) of the first `nruns` runs of `runs`. */
function pfnsOfRuns(
  pm: PhysMem,
  runs: readonly number[],
  nruns: number,
  from: number,
  to: number,
): number[] {
  const out: number[] = [];
  let pos = 0;
  for (let k = 0; k < 2 * nruns && pos < to; k += 2) {
    const first = runs[k]!;
    const n = runs[k + 1]!;
    for (let i = Math.max(0, from - pos); i < n && pos + i < to; i++) out.push(pm.pfnOf(first + i));
    pos += n;
  }
  return out;
}

// ---- per-segment searches -------------------------------------------------

const INT_LIMIT = 2147483648;

function roundUp(x: number, a: number): number {
  return a === 1 ? x : Math.ceil(x / a) * a;
}

/** C `int` conversion (two's complement wrap) of an integer-valued number. */
function i32(x: number): number {
  return x | 0;
}

/** A refusal raised mid-search: the call's takes and hints must be undone. */
class Refusal extends KernelError {}

/** A request NetBSD could not carry out in defined behaviour. */
function undefinedBehaviour(what: string): KernelError {
  return new Refusal("EINVAL", `uvm_pglistalloc: ${what} (undefined in NetBSD)`);
}

/**
 * Lowest candidate `c` (a multiple of `a`, `c >= from`, `c + num <= lim`)
 * whose `num` frames are free and, with `b` pages of boundary (0: none), do
 * not cross one; -1 when there is none. `off` maps frames of the segment to
 * ids. Every value here is below 2^31 (the caller checked), so the
 * arithmetic stays in small integers.
 */
function searchRun(
  pm: PhysMem,
  off: number,
  from: number,
  lim: number,
  num: number,
  a: number,
  b: number,
): number {
  const amask = -a | 0;
  const bmask = -b | 0;
  let c = from;
  for (;;) {
    if (num >= 63) {
      const w = pm.findFullWord((c + off + 31) >> 5, (lim + off) >> 5);
      if (w < 0) return -1;
      const need = w * 32 + 32 - num - off;
      if (need > c) c = (need + a - 1) & amask;
    }
    if (c + num > lim) return -1;
    if (b !== 0) {
      const last = (c + num - 1) & bmask;
      if ((c & bmask) !== last) {
        c = (last + a - 1) & amask;
        continue;
      }
    }
    const busy = pm.lastBusy(c + off, c + num + off);
    if (busy < 0) return c;
    const next = pm.findFree(busy + 1, lim + off);
    if (next < 0) return -1;
    c = (next - off + a - 1) & amask;
  }
}

function takeRun(uvm: Uvm, first: number, num: number, out: RunList): void {
  out.add(first, num, uvmInside(uvm).takeFreeRun(first, num, PG_PGLIST));
}

/**
 * `uvm_pglistalloc_c_ps`: one run of `num` pages from segment `s`, or nothing.
 * While every value NetBSD keeps in an `int` stays below 2^31 the word-wise
 * search gives its answer; past that, {@link contigSegmentLiteral}.
 */
function contigSegment(
  uvm: Uvm,
  s: number,
  num: number,
  lowPfn: number,
  highPfn: number,
  a: number,
  boundary: number,
  out: RunList,
): boolean {
  const inside = uvmInside(uvm), pm = inside.physmem;
  const as = pm.segAvailStart[s]!;
  const ae = pm.segAvailEnd[s]!;
  if (highPfn <= as || lowPfn >= ae) return false;
  const idOff = pm.segIdOffset[s]!;
  if (ae + a + num >= INT_LIMIT || ae + idOff + a + num >= INT_LIMIT) {
    return contigSegmentLiteral(uvm, s, num, lowPfn, highPfn, a, boundary, out);
  }
  const asI = as | 0;
  const bp = Math.floor(boundary * inside.pglist.perPage);
  const b = bp < INT_LIMIT ? bp | 0 : 0;
  const hint = pm.segHint[s]! | 0;
  const off = idOff | 0;
  const low = lowPfn | 0;
  const limit = Math.min(u32(highPfn), ae) | 0;
  const amask = -a | 0;
  let c = searchRun(pm, off, (Math.max(low, asI + hint) + a - 1) & amask, limit, num, a, b);
  if (c < 0) {
    if (hint === 0) return false;
    c = searchRun(
      pm,
      off,
      (Math.max(low, asI) + a - 1) & amask,
      Math.min(limit, asI + hint),
      num,
      a,
      b,
    );
    if (c < 0) return false;
  }
  takeRun(uvm, c + off, num, out);
  pm.segHint[s] = c + num - asI;
  return true;
}

/**
 * NetBSD's `uvm_pglistalloc_c_ps` statement for statement, with its `int`
 * and `u_int` wrap-around, page by page: for segments near or above frame
 * 2^31 and alignments beyond an `int`. Where NetBSD would touch a page
 * outside the segment, take a busy page or never finish, the request is
 * refused.
 */
function contigSegmentLiteral(
  uvm: Uvm,
  s: number,
  num: number,
  lowPfn: number,
  highPfn: number,
  a: number,
  boundary: number,
  out: RunList,
): boolean {
  const pm = uvmInside(uvm).physmem;
  const start = pm.segStart[s]!;
  const n = pm.segEnd[s]! - start;
  const as = pm.segAvailStart[s]!;
  const ae = pm.segAvailEnd[s]!;
  const hint = pm.segHint[s]!;
  const base = start + pm.segIdOffset[s]!;
  const bpages = Math.floor(boundary / uvm.pageSize);
  const pagemask = bpages === 0 ? 0 : i32(-bpages);
  let candidate = i32(roundUp(Math.max(u32(lowPfn), u32(as + hint)), a));
  let limit = i32(Math.min(u32(highPfn), u32(ae)));
  let skip = 0;
  let second = false;
  let cidx = 0;
  let end = 0;
  let budget = 4 * n + 4096;
  for (;;) {
    if (--budget < 0) throw undefinedBehaviour("the contiguous search would not end");
    if (i32(candidate + num) > limit) {
      if (hint === 0 || second) return false;
      second = true;
      candidate = i32(roundUp(Math.max(u32(lowPfn), u32(as)), a));
      limit = i32(Math.min(u32(limit), u32(as + hint)));
      skip = 0;
      continue;
    }
    if (boundary !== 0 && ((candidate ^ i32(candidate + num - 1)) & pagemask) !== 0) {
      candidate = i32(roundUp(i32(candidate + num - 1) & pagemask, a));
      skip = 0;
      continue;
    }
    cidx = i32(candidate - start);
    end = i32(cidx + num);
    const stop = i32(cidx + skip);
    let idx = end - 1;
    for (; idx >= stop; idx--) {
      if (idx < 0 || idx >= n) throw undefinedBehaviour(`page index ${idx} outside its segment`);
      if (!pm.isFreeId(base + idx)) break;
    }
    if (idx < stop) break;
    const cnt = i32(roundUp(i32(idx + 1 - cidx), a));
    skip = i32(num - cnt);
    candidate = i32(candidate + cnt);
  }
  for (let idx = cidx; idx < end; idx++) {
    if (idx < 0 || idx >= n || !pm.isFreeId(base + idx)) {
      throw undefinedBehaviour(`page index ${idx} would be taken though not free`);
    }
  }
  const h = u32(i32(candidate + num) - as);
  if (h > ae - as) throw undefinedBehaviour(`start hint ${h} beyond its segment`);
  takeRun(uvm, base + cidx, num, out);
  pm.segHint[s] = h;
  return true;
}

/**
 * `uvm_pglistalloc_s_ps`: up to `num` free pages from segment `s`; returns
 * how many. Segments reaching frame 2^31 go to {@link simpleSegmentLiteral}.
 */
function simpleSegment(
  uvm: Uvm,
  s: number,
  num: number,
  lowPfn: number,
  highPfn: number,
  out: RunList,
): number {
  const inside = uvmInside(uvm), pm = inside.physmem;
  const ae = pm.segAvailEnd[s]!;
  if (highPfn <= pm.segAvailStart[s]! || lowPfn >= ae) return 0;
  if (ae >= INT_LIMIT || ae + pm.segIdOffset[s]! >= INT_LIMIT) {
    return simpleSegmentLiteral(uvm, s, num, lowPfn, highPfn, out);
  }
  const as = pm.segAvailStart[s]! | 0;
  const hint = pm.segHint[s]! | 0;
  const off = pm.segIdOffset[s]! | 0;
  const low = lowPfn | 0;
  const busy = pm.busyMap;
  let todo = num;
  let cand = Math.max(low, as + hint);
  let limit = Math.min(u32(highPfn), ae) | 0;
  let second = false;
  for (;;) {
    // Take the free pages of [cand, limit) a bitmap word at a time.
    if (cand < limit) {
      const from = cand + off;
      const to = limit + off;
      const lastW = (to - 1) >> 5;
      let w = from >> 5;
      let bits = ~busy[w]! & (-1 << (from & 31));
      for (;;) {
        if (w === lastW) bits &= -1 >>> (31 - ((to - 1) & 31));
        if (bits !== 0) {
          // Take the word's free pages up to the todo-th one.
          let take = bits;
          let n = popcount32(bits);
          if (n >= todo) {
            n = todo;
            for (let k = todo; k < popcount32(bits); k++) take &= ~(1 << (31 - Math.clz32(take)));
          }
          inside.takeFreeBits(w, take, PG_PGLIST);
          const lowBit = take & -take;
          if ((take & (take + lowBit)) === 0) {
            // One run of bits: consecutive ids.
            out.add(w * 32 + 31 - Math.clz32(lowBit), n);
          } else {
            let t = take;
            while (t !== 0) {
              out.add(w * 32 + 31 - Math.clz32(t & -t), 1);
              t &= t - 1;
            }
          }
          todo -= n;
          if (todo === 0) {
            pm.segHint[s] = w * 32 + 31 - Math.clz32(take) - off + 1 - as;
            return num;
          }
        }
        if (w >= lastW) break;
        bits = ~busy[++w]!;
      }
    }
    if (hint === 0 || second) break;
    second = true;
    cand = Math.max(low, as);
    limit = Math.min(limit, as + hint);
  }
  if (limit < as) throw undefinedBehaviour(`start hint ${limit - as} below its segment`);
  pm.segHint[s] = limit - as;
  return num - todo;
}

/** NetBSD's `uvm_pglistalloc_s_ps` statement for statement (see {@link contigSegmentLiteral}). */
function simpleSegmentLiteral(
  uvm: Uvm,
  s: number,
  num: number,
  lowPfn: number,
  highPfn: number,
  out: RunList,
): number {
  const pm = uvmInside(uvm).physmem;
  const start = pm.segStart[s]!;
  const n = pm.segEnd[s]! - start;
  const as = pm.segAvailStart[s]!;
  const ae = pm.segAvailEnd[s]!;
  const hint = pm.segHint[s]!;
  const base = start + pm.segIdOffset[s]!;
  let todo = num;
  let candidate = i32(Math.max(u32(lowPfn), u32(as + hint)));
  let limit = i32(Math.min(u32(highPfn), u32(ae)));
  let second = false;
  for (;;) {
    if (candidate >= limit) {
      if (hint === 0 || second) {
        candidate = i32(limit - 1);
        break;
      }
      second = true;
      candidate = i32(Math.max(u32(lowPfn), u32(as)));
      limit = i32(Math.min(u32(limit), u32(as + hint)));
      continue;
    }
    const idx = candidate - start;
    if (idx < 0 || idx >= n) throw undefinedBehaviour(`page index ${idx} outside its segment`);
    if (pm.isFreeId(base + idx)) {
      takeRun(uvm, base + idx, 1, out);
      if (--todo === 0) break;
    }
    candidate = i32(candidate + 1);
  }
  const h = u32(i32(candidate + 1) - as);
  if (h > ae - as) throw undefinedBehaviour(`start hint ${h} beyond its segment`);
  pm.segHint[s] = h;
  return num - todo;
}

/**
 * NetBSD's test before a search: free pages at or below the two reserves.
 * They are `int`s and so is their sum, which wraps (two reserves of 2^30
 * add up to INT_MIN, and no count is at or below that).
 */
function belowReserve(uvm: Uvm): boolean {
  return uvm.free <= ((uvm.reservePagedaemon + uvm.reserveKernel) | 0);
}

/** `uvm_pglistalloc_contig` without the fallback: true when `out` got the run. */
function contigAttempt(
  uvm: Uvm,
  num: number,
  lowPfn: number,
  highPfn: number,
  a: number,
  boundary: number,
  out: RunList,
): boolean {
  if (belowReserve(uvm)) return false;
  const pm = uvmInside(uvm).physmem;
  const order = pm.searchOrder;
  for (let k = 0; k < pm.nsegs; k++) {
    if (contigSegment(uvm, order[k]!, num, lowPfn, highPfn, a, boundary, out)) return true;
  }
  return false;
}

/** One pass of `uvm_pglistalloc_simple`; returns the pages still missing. */
function simpleAttempt(
  uvm: Uvm,
  num: number,
  lowPfn: number,
  highPfn: number,
  out: RunList,
): number {
  if (belowReserve(uvm)) return num;
  const pm = uvmInside(uvm).physmem;
  const order = pm.searchOrder;
  for (let k = 0; k < pm.nsegs; k++) {
    num -= simpleSegment(uvm, order[k]!, num, lowPfn, highPfn, out);
    if (num === 0) return 0;
  }
  return num;
}

/**
 * Undoes the takes of `out` from its `from`-th page on, newest first (the
 * highest id of a run first: runs only grow upward), and the hints.
 */
function rollback(uvm: Uvm, out: RunList, from: number, snap: HintSnapshot): void {
  const inside = uvmInside(uvm), runs = out.runs;
  while (out.pages > from) {
    const k = 2 * (out.nruns - 1);
    const first = runs[k]!;
    const n = runs[k + 1]!;
    const keep = Math.max(0, from - (out.pages - n));
    for (let id = first + n - 1; id >= first + keep; id--) inside.untakeFree(id);
    out.pages -= n - keep;
    if (keep === 0) out.nruns--;
    else runs[k + 1] = keep;
  }
  snap.restore(inside.physmem);
}

/** Puts every page of `out` back on the free lists (as uvm_pglistfree does) and empties it. */
function giveBack(uvm: Uvm, out: RunList): void {
  const inside = uvmInside(uvm), runs = out.runs;
  for (let k = 0; k < 2 * out.nruns; k += 2) {
    inside.putFreeRun(runs[k]!, runs[k]! + runs[k + 1]!, k === 0 && out.firstLinked);
  }
  out.clear();
}

/** Frames of the pages of `out` from its `from`-th to its `to`-th, for the tracer. */
function pfnsOf(uvm: Uvm, out: RunList, from: number, to: number): number[] {
  return pfnsOfRuns(uvmInside(uvm).physmem, out.runs, out.nruns, from, to);
}

/** Tells the tracer about one search with the request's own arguments. */
function traceSearch(
  uvm: Uvm,
  rq: Request,
  num: number,
  pfns: readonly number[] | null,
  kept: readonly number[] | null,
): void {
  // A first search asks for the caller's size; later passes of a waiting
  // simple request (no boundary) ask for the pages still missing.
  const size = num === rq.num ? rq.size : num * uvm.pageSize;
  uvm.tracer!.search(size, rq.low, rq.high, rq.alignment, rq.boundary, rq.nsegs, pfns, kept);
}

/** Hands the pages of `out` over to a new page list and empties `out`. */
function makeList(uvm: Uvm, out: RunList): PageList {
  const runs = out.runs;
  let more: number[] | null = null;
  if (out.nruns > 1) {
    more = new Array<number>(2 * out.nruns - 2);
    for (let k = 2; k < 2 * out.nruns; k++) more[k - 2] = runs[k]!;
  }
  const list = newList(uvm, runs[0]!, runs[1]!, out.firstLinked, more, out.pages);
  out.clear();
  return list;
}

// ---- the aggressive contiguous search ---------------------------------------

const M64 = (1n << 64n) - 1n;

function roundUp64(x: bigint, m: bigint): bigint {
  return ((x + m - 1n) & ~(m - 1n)) & M64;
}

/**
 * `uvm_pglistalloc_contig_aggressive` as a generator: it yields where NetBSD
 * calls `uvm_wait` and returns whether `out` got a run. The bounds are
 * computed in 64-bit unsigned arithmetic as NetBSD does. Pages it holds are
 * marked `PG_PGLCA`, chained through the queue links (newest first), and all
 * freed again when it ends, however it ends.
 */
function* aggressive(
  uvm: Uvm,
  num: number,
  low: number,
  high: number,
  alignment: number,
  boundary: number,
  out: RunList,
): Generator<void, boolean, void> {
  const pm = uvmInside(uvm).physmem;
  const ps = BigInt(uvm.pageSize);
  const al = BigInt(alignment);
  const bd = BigInt(boundary);
  const lowB = BigInt(low);
  const highB = BigInt(high);
  const numB = BigInt(num);
  const acnt = alignment / uvm.pageSize;
  const amask = ~(al - 1n) & M64;
  const bmask = ~(bd - 1n) & M64;
  if (bmask > amask) {
    throw new KernelError(
      "EINVAL",
      `uvm_pglistalloc: boundary ${describe(boundary)} below alignment ${describe(alignment)}`,
    );
  }
  const marked = (pa: bigint): boolean => {
    const id = pm.idOf(Number(pa / ps));
    return id >= 0 && (pm.flagsOf(id) & PG_PGLCA) !== 0;
  };
  let head = -1;
  const unlink = (id: number): void => {
    const p = pm.prevOf(id);
    const n = pm.nextOf(id);
    if (p === -1) head = n;
    else pm.setNext(p, n);
    if (n !== -1) pm.setPrev(n, p);
  };
  try {
    while (uvm.hooks.reclaimable()) {
      const id = uvmInside(uvm).pageAllocId();
      if (id < 0) {
        yield;
        continue;
      }
      pm.setFlags(id, PG_PGLCA);
      pm.setNext(id, head);
      pm.setPrev(id, -1);
      if (head !== -1) pm.setPrev(head, id);
      head = id;

      const s = pm.segmentOfId(id);
      const pa = BigInt(id - pm.segIdOffset[s]!) * ps;
      if (pa < lowB || pa >= highB) continue;
      let spa = pa & amask;
      let rlo = roundUp64(BigInt(pm.segAvailStart[s]!) * ps, al);
      const r2 = roundUp64(lowB, al);
      if (r2 > rlo) rlo = r2;
      const r3 = roundUp64((pa - ps * (numB - 1n)) & M64, al);
      if (r3 > rlo) rlo = r3;
      if (bd !== 0n && (spa & bmask) > rlo) rlo = spa & bmask;
      let rhi = BigInt(pm.segAvailEnd[s]!) * ps;
      if (highB < rhi) rhi = highB;
      if (bd !== 0n) {
        const r = (pa & bmask) + bd;
        if (r < rhi) rhi = r;
      }
      if (((rhi - rlo) & M64) < ps * numB) continue;
      let run = 0;
      while (spa > rlo) {
        let i = 0;
        while (i < acnt && marked(spa - al + BigInt(i) * ps)) i++;
        if (i < acnt) break;
        spa -= al;
        run += acnt;
      }
      if (spa + ps * numB > rhi) continue;
      while (run < num && marked(spa + BigInt(run) * ps)) run++;
      if (run < num) continue;
      const first = Number(spa / ps);
      for (let i = 0; i < num; i++) {
        const pid = pm.idOf(first + i);
        unlink(pid);
        pm.setFlags(pid, PG_PGLIST);
        out.add(pid, 1);
      }
      return true;
    }
    return false;
  } finally {
    while (head !== -1) {
      const id = head;
      head = pm.nextOf(id);
      uvmInside(uvm).putFree(id);
      uvm.tracer?.pageGiven(pm.pfnOf(id));
    }
  }
}

/** Refuses a list whose run starting at page `id` is not held by a page list (a defect). */
function notHeld(pm: PhysMem, id: number): void {
  if (pm.isFreeId(id) || (pm.flagsOf(id) & PG_PGLIST) === 0) {
    throw new KernelError("BADFREE", `uvm_pglistfree: page ${pm.pfnOf(id)} is not held`);
  }
}

/** Refuses an allocator argument that is not a {@link Uvm}. */
function notUvm(uvm: unknown): never {
  const what = typeof uvm === "object" && uvm !== null
    ? `an object (${(uvm as { constructor?: { name?: string } }).constructor?.name ?? "no class"})`
    : describe(uvm);
  throw new KernelError("EINVAL", `uvm must be a Uvm, got ${what}`);
}

function aborted(): KernelError {
  return new KernelError("EINTR", "uvm_pglistalloc: wait aborted");
}

function wouldBlock(): KernelError {
  return new KernelError("WOULDBLOCK", "uvm_pglistalloc: would have to wait for free pages");
}

function noMemory(): KernelError {
  return new KernelError("ENOMEM", ENOMEM_MESSAGE);
}

// ---- the entry points -------------------------------------------------------

/** True for an integer in `[0, 2^53 - 1]` (the common case, checked without a call). */
function isAddr(x: unknown): boolean {
  return typeof x === "number" &&
    ((x >>> 0) === x || (x >= 0 && x <= MAX_ADDR && Math.floor(x) === x));
}

/** True for 0 or a power of two (`x` an integer in `[0, 2^53 - 1]`). */
function zeroOrPow2(x: number): boolean {
  return x <= 0x40000000 ? (x & (x - 1)) === 0 : isPow2(x);
}

/** Checks the arguments and fills `rq` as NetBSD adjusts them. */
function request(
  rq: Request,
  uvm: Uvm,
  size: number,
  low: number,
  high: number,
  alignment: number,
  boundary: number,
  nsegs: number,
): Request {
  if (!(size >= 1 && isAddr(size))) checkInteger("size", size, 1);
  if (!isAddr(low)) checkInteger("low", low);
  if (!isAddr(high)) checkInteger("high", high);
  if (!isAddr(alignment)) checkInteger("alignment", alignment);
  if (!zeroOrPow2(alignment)) {
    throw new KernelError(
      "EINVAL",
      `alignment must be 0 or a power of two, got ${describe(alignment)}`,
    );
  }
  if (!isAddr(boundary)) checkInteger("boundary", boundary);
  if (!zeroOrPow2(boundary)) {
    throw new KernelError(
      "EINVAL",
      `boundary must be 0 or a power of two, got ${describe(boundary)}`,
    );
  }
  if (!(nsegs <= INT_MAX && isAddr(nsegs))) checkInteger("nsegs", nsegs, 0, INT_MAX);
  const ps = uvm.pageSize;
  if (alignment < ps) alignment = ps;
  if (boundary !== 0 && boundary < size) {
    throw new KernelError(
      "EINVAL",
      `uvm_pglistalloc: boundary ${describe(boundary)} smaller than size ${describe(size)}`,
    );
  }
  const perPage = uvmInside(uvm).pglist.perPage;
  const num = Math.ceil(size * perPage);
  if (num > INT_MAX) {
    throw new KernelError("EINVAL", `size ${describe(size)} is more than 2^31 - 1 pages`);
  }
  const lowRounded = low === 0 ? 0 : Math.ceil(low / alignment) * alignment;
  rq.num = num;
  rq.low = lowRounded;
  rq.high = high;
  rq.alignment = alignment;
  rq.boundary = boundary;
  rq.size = size;
  rq.nsegs = nsegs;
  rq.alignPages = alignment * perPage;
  rq.lowPfn = Math.floor(lowRounded * perPage);
  rq.highPfn = Math.floor(high * perPage);
  rq.contig = nsegs < num || alignment !== ps || boundary !== 0;
  return rq;
}

/**
 * `uvm_pglistalloc(size, low, high, alignment, boundary, rlist, nsegs,
 * waitok)`: `size` bytes (rounded up to pages) of frames in `[low, high)`
 * (bytes; `high` exclusive at page granularity), in at most `nsegs` runs,
 * each run `alignment`-aligned (0: a page) and not crossing a multiple of
 * `boundary` (0: none). Chooses exactly NetBSD's pages and start hints.
 * Throws a {@link KernelError}: `ENOMEM` when nothing fits (free pages
 * unchanged; a simple request may have moved hints, as in NetBSD), `EINVAL`
 * for a boundary below the size, for bad arguments and where NetBSD's
 * behaviour is undefined (nothing changed). With `waitok`, where NetBSD
 * would sleep it throws `WOULDBLOCK` instead and changes nothing; use
 * {@link pglistAllocWait} to wait.
 *
 * @example 64 KiB of contiguous pages below 16 MiB
 * ```ts
 * import { pglistAlloc, pglistFree, Uvm } from "./mod.ts";
 *
 * const uvm = new Uvm(); // 4 KiB pages
 * uvm.physload(0x100, 0x10100, 0x100, 0x10100, 0); // 256 MiB of frames above 1 MiB, all free
 * // 64 KiB in one piece, 64 KiB-aligned, below 16 MiB: as for an ISA DMA buffer.
 * const list = pglistAlloc(uvm, 65536, 0, 2 ** 24, 65536, 0, 1);
 * console.log(list.length, list.pfn(0).toString(16)); // 16 100: frames 0x100 to 0x10f
 * pglistFree(uvm, list);
 * console.log(uvm.free); // 65536 again
 * ```
 */
export function pglistAlloc(
  uvm: Uvm,
  size: number,
  low: number,
  high: number,
  alignment: number,
  boundary: number,
  nsegs: number,
  waitok?: boolean,
): PageList {
  if (waitok === undefined) waitok = false;
  const list = pglistTryAlloc(uvm, size, low, high, alignment, boundary, nsegs, waitok);
  if (list === null) throw noMemory();
  return list;
}

/**
 * {@link pglistAlloc} that returns `null` instead of throwing `ENOMEM` (the
 * cheap form for callers that expect to fail, such as a pool refilling).
 */
export function pglistTryAlloc(
  uvm: Uvm,
  size: number,
  low: number,
  high: number,
  alignment: number,
  boundary: number,
  nsegs: number,
  waitok?: boolean,
): PageList | null {
  if (waitok === undefined) waitok = false;
  if (!(uvm instanceof Uvm)) notUvm(uvm);
  if (typeof waitok !== "boolean") {
    throw new KernelError("EINVAL", `waitok must be a boolean, got ${describe(waitok)}`);
  }
  const inside = uvmInside(uvm), state = inside.pglist;
  const rq = request(state.request, uvm, size, low, high, alignment, boundary, nsegs);
  const { out, snap } = state;
  out.clear();
  snap.save(inside.physmem);
  const a = rq.alignPages;
  let left: number;
  try {
    if (rq.contig) {
      if (contigAttempt(uvm, rq.num, rq.lowPfn, rq.highPfn, a, rq.boundary, out)) {
        return searched(uvm, rq, out);
      }
      if (!waitok) {
        if (uvm.tracer !== null) traceSearch(uvm, rq, rq.num, null, null);
        uvm.hooks.kick();
        return null;
      }
      const list = aggressiveSync(uvm, rq, out);
      if (list !== null) uvm.tracer?.listMade(list, false);
      return list;
    }
    left = simpleAttempt(uvm, rq.num, rq.lowPfn, rq.highPfn, out);
  } catch (e) {
    if (e instanceof Refusal) rollback(uvm, out, 0, snap);
    throw e;
  }
  if (left !== 0 && waitok) {
    rollback(uvm, out, 0, snap);
    throw wouldBlock();
  }
  uvm.hooks.kick();
  if (left === 0) return searched(uvm, rq, out);
  giveBack(uvm, out);
  if (uvm.tracer !== null) traceSearch(uvm, rq, rq.num, null, null);
  return null;
}

/** The list of a search that found every page, told to the tracer. */
function searched(uvm: Uvm, rq: Request, out: RunList): PageList {
  if (uvm.tracer === null) return makeList(uvm, out);
  traceSearch(uvm, rq, rq.num, pfnsOf(uvm, out, 0, out.pages), null);
  const list = makeList(uvm, out);
  uvm.tracer.listMade(list, true);
  return list;
}

/** The aggressive search run without waiting: `WOULDBLOCK` where it would wait. */
function aggressiveSync(uvm: Uvm, rq: Request, out: RunList): PageList | null {
  const lock = uvmInside(uvm).pglist.lock;
  if (lock.held) throw wouldBlock();
  lock.held = true;
  try {
    const gen = aggressive(uvm, rq.num, rq.low, rq.high, rq.alignment, rq.boundary, out);
    const r = gen.next();
    if (!r.done) {
      gen.return(false);
      throw wouldBlock();
    }
    return r.value ? makeList(uvm, out) : null;
  } finally {
    lock.release();
  }
}

/**
 * `uvm_pglistalloc` with `waitok` set: as {@link pglistAlloc}, but where the
 * seed sleeps this waits on `uvm.hooks.wait`. The simple path keeps the pages
 * it has and waits until enough come free; the contiguous path runs the
 * aggressive search while `uvm.hooks.reclaimable()` holds, else rejects with
 * `ENOMEM`. Aborting `signal` rejects with `EINTR`, gives back every page
 * the call held and puts back the start hints its passes moved (those no
 * other call moved since).
 */
export async function pglistAllocWait(
  uvm: Uvm,
  size: number,
  low: number,
  high: number,
  alignment: number,
  boundary: number,
  nsegs: number,
  signal?: AbortSignal,
): Promise<PageList> {
  if (!(uvm instanceof Uvm)) notUvm(uvm);
  const rq = request(new Request(), uvm, size, low, high, alignment, boundary, nsegs);
  if (signal?.aborted) throw aborted();
  const out = new RunList();
  const snap = new HintSnapshot();
  const a = rq.alignPages;
  if (rq.contig) {
    snap.save(uvmInside(uvm).physmem);
    try {
      if (contigAttempt(uvm, rq.num, rq.lowPfn, rq.highPfn, a, rq.boundary, out)) {
        return searched(uvm, rq, out);
      }
    } catch (e) {
      if (e instanceof Refusal) rollback(uvm, out, 0, snap);
      throw e;
    }
    if (uvm.tracer !== null) traceSearch(uvm, rq, rq.num, null, null);
    const lock = uvmInside(uvm).pglist.lock;
    await lock.acquire(signal);
    try {
      const gen = aggressive(uvm, rq.num, rq.low, rq.high, rq.alignment, rq.boundary, out);
      for (;;) {
        const r = gen.next();
        if (r.done) {
          if (!r.value) throw noMemory();
          const list = makeList(uvm, out);
          uvm.tracer?.listMade(list, false);
          return list;
        }
        try {
          if (signal?.aborted) throw aborted();
          await uvm.hooks.wait(signal);
          if (signal?.aborted) throw aborted();
        } catch (e) {
          gen.return(false);
          throw e;
        }
      }
    } finally {
      lock.release();
    }
  }
  let num = rq.num;
  const pm = uvmInside(uvm).physmem;
  // Per segment, the hint this call's passes last set and the value it had
  // before them (NaN: untouched), so that a call ending without pages puts
  // back what it moved and leaves what other calls moved since.
  const segs = pm.nsegs;
  const ours = new Float64Array(segs).fill(NaN);
  const orig = new Float64Array(segs);
  try {
    for (;;) {
      if (signal?.aborted) throw aborted();
      snap.save(pm);
      const mark = out.pages;
      const wanted = num;
      try {
        num = simpleAttempt(uvm, num, rq.lowPfn, rq.highPfn, out);
      } catch (e) {
        if (e instanceof Refusal) rollback(uvm, out, mark, snap);
        throw e;
      }
      if (uvm.tracer !== null) {
        const taken = pfnsOf(uvm, out, mark, out.pages);
        traceSearch(uvm, rq, wanted, num === 0 ? taken : null, num === 0 ? null : taken);
      }
      if (pm.nsegs === segs) {
        for (let s = 0; s < segs; s++) {
          const was = snap.hints[s]!;
          const now = pm.segHint[s]!;
          if (now === was) continue;
          if (was !== ours[s]) orig[s]! = was;
          ours[s]! = now;
        }
      }
      uvm.hooks.kick();
      if (num === 0) {
        const list = makeList(uvm, out);
        uvm.tracer?.listMade(list, true);
        return list;
      }
      await uvm.hooks.wait(signal);
    }
  } catch (e) {
    const held = uvm.tracer === null ? null : pfnsOf(uvm, out, 0, out.pages);
    giveBack(uvm, out);
    if (held !== null) { for (const pfn of held) uvm.tracer!.pageGiven(pfn); }
    if (pm.nsegs === segs) {
      for (let s = 0; s < segs; s++) if (pm.segHint[s] === ours[s]) pm.segHint[s] = orig[s]!;
    }
    throw e;
  }
}

/**
 * `uvm_pglistfree`: puts every page of `list` back at the head of its free
 * list, in list order. Refuses (changing nothing) a list of another allocator
 * and a list already freed.
 */
export function pglistFree(uvm: Uvm, list: PageList): void {
  if (!(uvm instanceof Uvm)) notUvm(uvm);
  if (!(list instanceof PageList) || list.uvm !== uvm) {
    throw new KernelError(
      "EINVAL",
      `pglistFree: not a page list of this allocator: ${describe(list)}`,
    );
  }
  if (list.freed) throw new KernelError("BADFREE", "uvm_pglistfree: list already freed");
  const inside = uvmInside(uvm), pm = inside.physmem;
  const first = listFirst(list);
  const more = listMore(list);
  if (more !== null) {
    for (let k = 0; k < more.length; k += 2) notHeld(pm, more[k]!);
  }
  notHeld(pm, first);
  inside.putFreeRun(first, first + listCount(list), listLinked(list));
  if (more !== null) {
    for (let k = 0; k < more.length; k += 2) {
      inside.putFreeRun(more[k]!, more[k]! + more[k + 1]!, false);
    }
  }
  markFreed(list);
  if (uvm.tracer !== null) uvm.tracer.listFreed(list, list.pfns());
}
