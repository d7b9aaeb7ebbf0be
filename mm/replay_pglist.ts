/**
 * Replays `uvm_pglistalloc` traces (docs/replay.md, pglist half): `config`,
 * `physload`, `claim`, `release`, `alloc`, `free`, `state`, one output object
 * per operation, with segments searched in address order (`pglist`) or in
 * x86's BIGFIRST order (`pglist-bigfirst`; `state` lists them by address in
 * both). A refused operation throws a {@link KernelError} and leaves the
 * allocator as it was.
 *
 * @module
 */

import { field, intField as int } from "./replay_fields.ts";
import { checkInteger, describe, KernelError } from "./errors.ts";
import { Uvm } from "./page.ts";
import { type PageList, pglistAlloc, pglistFree } from "./pglist.ts";
import type { PhysSegStrategy } from "./physseg.ts";

type Op = Record<string, unknown>;

/** The owner byte that marks a page taken by `claim` (only `release` gives it back). */
const CLAIMED = 1;

/** Options of a {@link PglistReplayer}. */
export interface PglistReplayerOptions {
  /** The order segments are searched in (default `bsearch`; `bigfirst` for `pglist-bigfirst`). */
  physseg?: PhysSegStrategy;
}

/** Drives one {@link Uvm} from trace operations. */
export class PglistReplayer {
  readonly #physseg: PhysSegStrategy;
  #uvm: Uvm;
  #lists = new Map<number, PageList>();
  #nextList = 1;

  /** A replayer over a fresh allocator (4 KiB pages, no reserves until `config`). */
  constructor(options?: PglistReplayerOptions) {
    if (options === undefined) options = {};
    this.#physseg = options.physseg ?? "bsearch";
    this.#uvm = new Uvm({ physseg: this.#physseg });
  }

  /** The allocator being driven. */
  get uvm(): Uvm {
    return this.#uvm;
  }

  /** Carries out one operation and returns its output object. */
  apply(op: Record<string, unknown>): unknown {
    switch (op.op) {
      case "config":
        return this.#config(op);
      case "physload":
        this.#uvm.physload(
          int(op, "start"),
          int(op, "end"),
          int(op, "avail_start"),
          int(op, "avail_end"),
          int(op, "freelist"),
        );
        return { ok: true };
      case "claim":
        return this.#claim(this.#runs(op, true));
      case "release":
        return this.#release(this.#runs(op, false));
      case "alloc":
        return this.#alloc(op);
      case "free": {
        const k = int(op, "list", 1);
        const list = this.#lists.get(k);
        if (list === undefined) throw new KernelError("BADFREE", `free: no live list ${k}`);
        pglistFree(this.#uvm, list);
        this.#lists.delete(k);
        return { ok: true };
      }
      case "state":
        return this.#state();
      default:
        throw new KernelError("BADOP", `unknown pglist operation ${describe(op.op)}`);
    }
  }

  #config(op: Op): unknown {
    const pageSize = int(op, "page_size", 1);
    const reservePagedaemon = int(op, "reserve_pagedaemon");
    const reserveKernel = int(op, "reserve_kernel");
    if (this.#uvm.segmentCount !== 0 || this.#nextList !== 1) {
      throw new KernelError("EINVAL", "config: only before the first physload");
    }
    this.#uvm = new Uvm({ pageSize, reservePagedaemon, reserveKernel, physseg: this.#physseg });
    return { ok: true };
  }

  /**
   * Reads `pfns` as runs (a count of 0 names no page), checking that every
   * page is managed, free (claim) or taken by a claim (release), and that
   * no page is named twice.
   */
  #runs(op: Op, claim: boolean): [number, number][] {
    const raw = field(op, "pfns");
    if (!Array.isArray(raw)) throw new KernelError("EINVAL", `pfns must be a list of runs`);
    const runs: [number, number][] = raw.map((r, i) => {
      if (!Array.isArray(r) || r.length !== 2) {
        throw new KernelError("EINVAL", `pfns[${i}] must be [pfn, count], got ${describe(r)}`);
      }
      const pfn = checkInteger(`pfns[${i}][0]`, r[0]);
      return [pfn, checkInteger(`pfns[${i}][1]`, r[1], 0, 2 ** 53 - 1 - pfn)];
    });
    // An empty run names no page: nothing to check, nothing to take.
    const sorted = runs.filter((r) => r[1] > 0).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i - 1]![0] + sorted[i - 1]![1] > sorted[i]![0]) {
        throw new KernelError("EINVAL", `pfns: page ${sorted[i]![0]} named twice`);
      }
    }
    const uvm = this.#uvm;
    for (const [pfn, count] of runs) {
      for (let p = pfn; p < pfn + count; p++) {
        if (!uvm.isManaged(p)) {
          throw new KernelError("EINVAL", `page ${describe(p)} is in no physical segment`);
        }
        if (claim && !uvm.isFree(p)) {
          throw new KernelError("EBUSY", `claim: page ${describe(p)} is not free`);
        }
        if (!claim && (uvm.isFree(p) || uvm.owner(p) !== CLAIMED)) {
          throw new KernelError("BADFREE", `release: page ${describe(p)} is not claimed`);
        }
      }
    }
    return runs;
  }

  #claim(runs: [number, number][]): unknown {
    for (const [pfn, count] of runs) {
      for (let p = pfn; p < pfn + count; p++) {
        this.#uvm.pageClaim(p);
        this.#uvm.setOwner(p, CLAIMED);
      }
    }
    return { ok: true };
  }

  #release(runs: [number, number][]): unknown {
    for (const [pfn, count] of runs) {
      for (let p = pfn; p < pfn + count; p++) this.#uvm.pageFree(p);
    }
    return { ok: true };
  }

  #alloc(op: Op): unknown {
    const waitok = field(op, "waitok");
    if (typeof waitok !== "boolean") {
      throw new KernelError("EINVAL", `waitok must be a boolean, got ${describe(waitok)}`);
    }
    const list = pglistAlloc(
      this.#uvm,
      int(op, "size"),
      int(op, "low"),
      int(op, "high"),
      int(op, "alignment"),
      int(op, "boundary"),
      int(op, "nsegs"),
      waitok,
    );
    const k = this.#nextList++;
    this.#lists.set(k, list);
    return { list: k, pages: list.runs() };
  }

  #state(): unknown {
    const uvm = this.#uvm;
    const hints: number[] = [];
    for (let s = 0; s < uvm.segmentCount; s++) hints.push(uvm.segment(s).startHint);
    return { free: uvm.freeRuns(), hints };
  }
}
