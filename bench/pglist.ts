/**
 * uvm_pglistalloc benchmarks: the workloads of spec/workloads.md
 * (pglist-contig, pglist-fail, pglist-simple) under those names, each beside
 * the same workload on the plain page-by-page port of the seed
 * (`mm/pglist_reference.ts`), named "NAME (page-by-page)", so one run gives
 * the ratio. A failing request is measured through `pglistTryAlloc`, which
 * answers `null` rather than building an exception.
 *
 *     deno run -A bench/pglist.ts [--json] [--filter REGEX] [--native DIR]
 *     bun bench/pglist.ts [--json] [--filter REGEX] [--native DIR]
 *
 * `--filter` keeps the benchmarks whose names match (`--filter pglist-simple`
 * runs pglist-simple and its page-by-page baseline). With `--native DIR`,
 * when `DIR/pglist-oracle` exists (NetBSD's code compiled natively), each
 * workload kept also runs there, and the report ends with each workload's
 * time over the native one (see `_native.ts`); without the program the
 * comparison is skipped with a note.
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { bench, do_not_optimize, summary } from "mitata";
import { benchFilter, runMatching } from "./_filter.ts";
import { NativeComparison, nativeOption } from "./_native.ts";
import { Mulberry32 } from "../mm/random.ts";
import { Uvm } from "../mm/page.ts";
import { pglistTryAlloc } from "../mm/pglist.ts";
import { ReferencePglist } from "../mm/pglist_reference.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    json: { type: "boolean", default: false },
    filter: { type: "string" },
    ...nativeOption,
  },
});

const PAGE = 4096;
const START = 256;
const END = 256 + 2 ** 20;
const HIGH = 2 ** 40;

/** The two allocators behind one face: the fast one and the page-by-page port. */
interface Subject {
  claim(pfn: number): void;
  /** One request; frees the list again when it succeeded. Returns whether it did. */
  allocFree(pages: number, alignment: number, nsegs: number): boolean;
}

function fast(): Subject {
  const uvm = new Uvm({ pageSize: PAGE });
  uvm.physload(START, END, START, END, 0);
  return {
    claim: (pfn) => uvm.pageClaim(pfn),
    allocFree(pages, alignment, nsegs) {
      const list = pglistTryAlloc(uvm, pages * PAGE, 0, HIGH, alignment, 0, nsegs);
      if (list === null) return false;
      list.free();
      return true;
    },
  };
}

function pageByPage(): Subject {
  const ref = new ReferencePglist(PAGE);
  ref.physload(START, END, START, END, 0);
  return {
    claim: (pfn) => ref.take(pfn),
    allocFree(pages, alignment, nsegs) {
      const list = ref.alloc(pages * PAGE, 0, HIGH, alignment, 0, nsegs);
      if (list === null) return false;
      ref.freeList(list);
      return true;
    },
  };
}

/** pglist-contig fragmentation: runs of r % 512 + 1 pages, claimed when r % 10 < 7. */
function fragmentRuns(s: Subject): Subject {
  const r = new Mulberry32(1);
  for (let p = START; p < END;) {
    const len = r.next() % 512 + 1;
    const claim = r.next() % 10 < 7;
    const stop = Math.min(p + len, END);
    if (claim) { for (let q = p; q < stop; q++) s.claim(q); }
    p = stop;
  }
  return s;
}

/** pglist-fail fragmentation: each page claimed when r % 2 == 0. */
function fragmentHalf(s: Subject): Subject {
  const r = new Mulberry32(1);
  for (let p = START; p < END; p++) if (r.next() % 2 === 0) s.claim(p);
  return s;
}

const WORKLOADS = ["pglist-contig", "pglist-fail", "pglist-simple"] as const;
const filter = benchFilter(values.filter);
const keep = (name: string) => filter.test(name);

const native = new NativeComparison(values.native, "pglist-oracle", WORKLOADS);

/**
 * Registers benchmark `name`: when its turn comes, `setUp` makes the subject
 * and its operation, which runs a while before mitata times it. Set up and
 * warmed in turn, each benchmark is timed with the allocator compiled for
 * its own workload alone, and after a warm-up mitata times batches of calls
 * (a cold first call makes it time single calls: its clock and every
 * preemption rather than the allocator). With `--native`, the reference
 * runs the same workload just before, so that both meet the same load.
 */
function turn(name: string, setUp: () => () => unknown): void {
  if (!keep(name)) return;
  bench(name, function* () {
    native.run(name);
    const op = setUp();
    for (let i = 0; i < 2000; i++) op();
    yield op;
  });
}

function workloads(suffix: string, make: () => Subject): void {
  turn(`pglist-contig${suffix}`, () => {
    const contig = fragmentRuns(make());
    return () => do_not_optimize(contig.allocFree(16, 65536, 1));
  });
  turn(`pglist-fail${suffix}`, () => {
    const fail = fragmentHalf(make());
    if (fail.allocFree(64, PAGE, 1)) throw new Error("pglist-fail set-up: the request succeeded");
    return () => do_not_optimize(fail.allocFree(64, PAGE, 1));
  });
  turn(`pglist-simple${suffix}`, () => {
    const simple = make();
    return () => do_not_optimize(simple.allocFree(256, PAGE, 256));
  });
}

summary(() => {
  workloads("", fast);
  workloads(" (page-by-page)", pageByPage);
});
const report = await runMatching(filter, values.json);
// With --json the JSON report stays alone on standard output.
native.report(report, (line) => (values.json ? process.stderr : process.stdout).write(line + "\n"));
