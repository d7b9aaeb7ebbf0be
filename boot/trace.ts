/**
 * Recorders that write a run's allocations as replay traces (the format of
 * spec/replay.md), together with the output the run itself saw, so that a
 * replay of the trace can be checked line for line against the run.
 *
 * @module
 */

import type { VmemRecorder } from "../mm/kmem.ts";
import type { Arena } from "../mm/arena.ts";
import type { UvmTracer } from "../mm/page.ts";
import { VMC_IDENTIFIER, VMC_NO_QCACHE, Vmem } from "../mm/vmem.ts";
import { VmemFreeBSD } from "../mm/vmem_freebsd.ts";

/** A trace being written: operations and the results the run got. */
export class Trace {
  /** Trace lines (JSON objects, one per operation, plus `#` comments). */
  readonly lines: string[] = [];
  /** The output line the run got for each operation, in order. */
  readonly results: string[] = [];

  /** Adds a comment line (replay skips it). */
  comment(text: string): void {
    for (const line of text.split("\n")) this.lines.push(`# ${line}`);
  }

  /** Adds an operation and the result the run got. */
  op(op: Record<string, unknown>, result: Record<string, unknown>): void {
    this.lines.push(JSON.stringify(op));
    this.results.push(JSON.stringify(result));
  }

  /** The trace as file text. */
  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

/**
 * Records vmem operations of the kernel heap and its identifier arenas.
 * Every allocation is named (`"id"`, numbered from 1 in the order they were
 * asked for) and its free names that id instead of the address, so the trace
 * replays under any policy; the addresses the run saw are in the results.
 */
export class VmemTrace extends Trace implements VmemRecorder {
  #nextId = 1;
  /** Per arena, the id of the allocation live at each address. */
  readonly #ids = new Map<Arena, Map<number, number>>();

  /** Records `vmem_create` of `arena` with its first span. */
  create(arena: Arena, base: number, size: number): void {
    const flags: string[] = [];
    const cflags = arena instanceof Vmem ? arena.cflags : 0; // FreeBSD's arenas have no VMC_ flags
    if (cflags & VMC_IDENTIFIER) flags.push("identifier");
    if (cflags & VMC_NO_QCACHE) flags.push("no_qcache");
    this.#ids.set(arena, new Map());
    this.op({
      op: "create",
      arena: arena.name,
      base,
      size,
      quantum: arena.quantum,
      // FreeBSD's caches are not replayed: its arenas report what reaches their segments.
      qcache_max: arena instanceof VmemFreeBSD ? 0 : arena.qcacheMax,
      source: arena.source?.name ?? null,
      flags,
    }, { ok: true });
  }

  /**
   * Records an allocation with its flag words and the address it returned
   * (0 or, from FreeBSD's arenas, -1: failure).
   */
  alloc(arena: Arena, size: number, flags: readonly string[], addr: number): void {
    const id = this.#nextId++;
    const failed = addr === (arena instanceof VmemFreeBSD ? -1 : 0);
    if (!failed) this.#ids.get(arena)?.set(addr, id);
    this.op(
      { op: "alloc", arena: arena.name, size, flags, id },
      { addr: failed ? null : addr },
    );
  }

  /** Records a free, by the id of the allocation it gives back. */
  free(arena: Arena, addr: number, size: number): void {
    const ids = this.#ids.get(arena);
    const id = ids?.get(addr);
    if (id === undefined) {
      this.op({ op: "free", arena: arena.name, addr, size }, { ok: true });
    } else {
      ids!.delete(addr);
      this.op({ op: "free", arena: arena.name, id, size }, { ok: true });
    }
  }
}

/** `pfns` in order as runs `[first, count]` of consecutive frames. */
export function runsOf(pfns: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const pfn of pfns) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[0] + last[1] === pfn) last[1]++;
    else runs.push([pfn, 1]);
  }
  return runs;
}

/**
 * Records the page allocator's traffic as a pglist trace: uvm_pglistalloc
 * searches as `alloc` lines, pages taken or given one at a time (the heap's
 * uvm_pagealloc, the page cache, the aggressive contiguous path) as `claim`
 * and `release` lines, merged into runs while they come in a row.
 */
export class PglistTrace extends Trace implements UvmTracer {
  #k = 0;
  #pendingK = 0;
  #pendingExtra: number[] = [];
  readonly #lists = new WeakMap<object, { k: number; extra: number[] }>();
  #claims: number[] = [];
  #releases: number[] = [];

  /** Adds an operation, after any claims or releases still being merged. */
  override op(op: Record<string, unknown>, result: Record<string, unknown>): void {
    this.#flush();
    super.op(op, result);
  }

  /** The trace as file text. */
  override text(): string {
    this.#flush();
    return super.text();
  }

  /** Records the page size and reserves (must come first). */
  config(pageSize: number, reservePagedaemon: number, reserveKernel: number): void {
    this.op({
      op: "config",
      page_size: pageSize,
      reserve_pagedaemon: reservePagedaemon,
      reserve_kernel: reserveKernel,
    }, { ok: true });
  }

  /** Records uvm_page_physload. */
  physload(
    start: number,
    end: number,
    availStart: number,
    availEnd: number,
    freelist: number,
  ): void {
    this.op(
      { op: "physload", start, end, avail_start: availStart, avail_end: availEnd, freelist },
      {
        ok: true,
      },
    );
  }

  /** A page taken one at a time: part of a `claim` line. */
  pageTaken(pfn: number): void {
    if (this.#releases.length > 0) this.#flush();
    this.#claims.push(pfn);
  }

  /** A page given back one at a time: part of a `release` line. */
  pageGiven(pfn: number): void {
    if (this.#claims.length > 0) this.#flush();
    this.#releases.push(pfn);
  }

  /** One uvm_pglistalloc search: an `alloc` line (and a `claim` of what a waiting caller keeps). */
  search(
    size: number,
    low: number,
    high: number,
    alignment: number,
    boundary: number,
    nsegs: number,
    pfns: readonly number[] | null,
    kept: readonly number[] | null,
  ): void {
    const op = { op: "alloc", size, low, high, alignment, boundary, nsegs, waitok: false };
    if (pfns === null) {
      this.op(op, { error: "ENOMEM" });
    } else {
      this.#pendingK = ++this.#k;
      this.op(op, { list: this.#pendingK, pages: runsOf(pfns) });
    }
    if (kept !== null && kept.length > 0) {
      this.op({ op: "claim", pfns: runsOf(kept) }, { ok: true });
      this.#pendingExtra.push(...kept);
    }
  }

  /** Ties a list handed to the caller to the `alloc` line and claims it came from. */
  listMade(list: object, fromSearch: boolean): void {
    this.#lists.set(list, { k: fromSearch ? this.#pendingK : 0, extra: this.#pendingExtra });
    this.#pendingK = 0;
    this.#pendingExtra = [];
  }

  /** uvm_pglistfree: a `free` line for its search's list, `release` for the rest. */
  listFreed(list: object, pfns: readonly number[]): void {
    const made = this.#lists.get(list);
    if (made !== undefined && made.k !== 0) {
      this.op({ op: "free", list: made.k }, { ok: true });
      if (made.extra.length > 0) this.op({ op: "release", pfns: runsOf(made.extra) }, { ok: true });
    } else if (pfns.length > 0) {
      this.op({ op: "release", pfns: runsOf(pfns) }, { ok: true });
    }
  }

  /** Records a `state` query and the free runs and hints the run saw. */
  state(free: [number, number][], hints: number[]): void {
    this.op({ op: "state" }, { free, hints });
  }

  #flush(): void {
    if (this.#claims.length > 0) {
      const pfns = this.#claims;
      this.#claims = [];
      super.op({ op: "claim", pfns: runsOf(pfns) }, { ok: true });
    }
    if (this.#releases.length > 0) {
      const pfns = this.#releases;
      this.#releases = [];
      super.op({ op: "release", pfns: runsOf(pfns) }, { ok: true });
    }
  }
}
