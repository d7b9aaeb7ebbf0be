/**
 * What `uvm_pglistalloc` keeps between calls, per allocator: the lock that
 * lets one aggressive contiguous search run at a time (NetBSD's
 * `uvm_pglistalloc_contig_lock`) and the scratch objects the synchronous
 * calls reuse, so that a call allocates only the list it returns. Each
 * {@link Uvm} owns one, so allocators in one process never share any of it.
 *
 * @module
 */

import { KernelError } from "./errors.ts";
import type { PhysMem } from "./physseg.ts";

/**
 * The `rlist` under construction: runs of consecutive page ids in list order,
 * as flat pairs (first id, length). A page taken right after the last run's
 * end extends it, so a contiguous list is one run.
 */
export class RunList {
  /** Flat pairs: first id, length; only the first {@link nruns} pairs count. */
  runs: number[] = [];
  /** Runs in the list. */
  nruns = 0;
  /** Pages in the list. */
  pages = 0;
  /**
   * The first run was taken as one chain and is still linked so (see
   * `UvmInside.takeFreeRun`): false once anything extends it.
   */
  firstLinked = false;

  /** Appends the ids `[first, first + n)`, `linked` when they were taken as one chain. */
  add(first: number, n: number, linked = false): void {
    const k = 2 * this.nruns;
    const runs = this.runs;
    if (k > 0 && runs[k - 2]! + runs[k - 1]! === first) {
      runs[k - 1] = runs[k - 1]! + n;
      if (k === 2) this.firstLinked = false;
    } else {
      runs[k] = first;
      runs[k + 1] = n;
      if (k === 0) this.firstLinked = linked;
      this.nruns++;
    }
    this.pages += n;
  }

  /** Empties the list. */
  clear(): void {
    this.nruns = 0;
    this.pages = 0;
    this.firstLinked = false;
  }
}

/** The start hints as they were when a call began, to undo a refused call. */
export class HintSnapshot {
  /** Hint of each segment, by index in the segment table. */
  hints: Float64Array = new Float64Array(8);

  /** Records every segment's hint. */
  save(pm: PhysMem): void {
    if (this.hints.length < pm.nsegs) this.hints = new Float64Array(pm.nsegs * 2);
    for (let s = 0; s < pm.nsegs; s++) this.hints[s] = pm.segHint[s]!;
  }

  /** Puts back the hints {@link save} recorded. */
  restore(pm: PhysMem): void {
    for (let s = 0; s < pm.nsegs; s++) pm.segHint[s] = this.hints[s]!;
  }
}

/** One aggressive search at a time per allocator (`uvm_pglistalloc_contig_lock`). */
export class ContigLock {
  /** True while a search holds the lock. */
  held = false;
  readonly #queue: (() => void)[] = [];

  /** Resolves once the lock is held; rejects with `EINTR` (unqueued) when `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#queue.indexOf(go);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(new KernelError("EINTR", "uvm_pglistalloc: wait aborted"));
      };
      const go = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(go);
    });
  }

  /** Hands the lock to the next waiter, or frees it. */
  release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.held = false;
  }
}

/** A request after NetBSD's adjustments (alignment at least a page, `low` rounded up). */
export class Request {
  /** Pages wanted. */
  num = 0;
  /** `low` rounded up to the alignment (bytes). */
  low = 0;
  /** `high` as given (bytes). */
  high = 0;
  /** Alignment, at least a page (bytes). */
  alignment = 0;
  /** The alignment in pages. */
  alignPages = 0;
  /** Boundary (bytes; 0: none). */
  boundary = 0;
  /** Size as given (bytes). */
  size = 0;
  /** Most runs the list may have. */
  nsegs = 0;
  /** `low` as a frame number. */
  lowPfn = 0;
  /** `high` as a frame number (`atop`, exclusive). */
  highPfn = 0;
  /** True for the contiguous path. */
  contig = false;
}

/** The per-allocator state of `uvm_pglistalloc`. */
export class PglistState {
  /**
   * 1 / the page size, exact for a power of two: a byte count times it is
   * the count in pages divided exactly, without a division.
   */
  readonly perPage: number;
  /** The aggressive search's lock. */
  readonly lock: ContigLock = new ContigLock();
  /** The request of the synchronous calls (they never overlap). */
  readonly request: Request = new Request();
  /** The list the synchronous calls build. */
  readonly out: RunList = new RunList();
  /** The hints when the synchronous call began. */
  readonly snap: HintSnapshot = new HintSnapshot();

  constructor(pageSize: number) {
    this.perPage = 1 / pageSize;
  }
}
