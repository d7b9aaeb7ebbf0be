import { test } from "node:test";
import assert from "node:assert/strict";
import { KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import { Uvm, uvmInside } from "./page.ts";
import {
  type PageList,
  pglistAlloc,
  pglistAllocWait,
  pglistFree,
  pglistTryAlloc,
} from "./pglist.ts";
import { ReferencePglist } from "./pglist_reference.ts";
import { PG_PGLCA, type PhysSegStrategy } from "./physseg.ts";
import { refusal } from "./_test_util.ts";

const PAGE = 4096;
const HIGH = 2 ** 32 - 1;

/** Free runs (ascending) and hints, as replay's `state` prints them. */
function state(uvm: Uvm): { free: [number, number][]; hints: number[] } {
  const free: [number, number][] = [];
  const hints: number[] = [];
  for (let s = 0; s < uvm.segmentCount; s++) {
    const seg = uvm.segment(s);
    for (let p = seg.start; p < seg.end; p++) {
      if (!uvm.isFree(p)) continue;
      const last = free[free.length - 1];
      if (last !== undefined && last[0] + last[1] === p) last[1]++;
      else free.push([p, 1]);
    }
    hints.push(seg.startHint);
  }
  return { free, hints };
}

/** Everything a refused call must leave alone: free pages, hints, queue order, counts. */
function snapshot(uvm: Uvm): string {
  const order: number[] = [];
  for (let h = 0; h < 6; h++) {
    const pm = uvmInside(uvm).physmem;
    for (let id = pm.nextOf(h); id !== h; id = pm.nextOf(id)) order.push(id);
  }
  const counts = [0, 1, 2, 3, 4, 5].map((f) => uvm.freeCount(f));
  return JSON.stringify({ ...state(uvm), order, counts });
}

function alloc(
  uvm: Uvm,
  size: number,
  low: number,
  high: number,
  alignment: number,
  boundary: number,
  nsegs: number,
): [number, number][] {
  return pglistAlloc(uvm, size, low, high, alignment, boundary, nsegs).runs();
}

test("pglist: a contiguous pass never finds a run straddling the hint", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  pglistAlloc(uvm, 8 * PAGE, 0, HIGH, 0, 0, 1).free();
  for (let p = 16; p < 64; p++) uvm.pageClaim(p);
  assert.deepEqual(state(uvm), { free: [[0, 16]], hints: [8] });
  // [0, 12) is free, but the first pass starts at 8 and the second only
  // accepts runs ending at or before 8.
  assert.equal(refusal(() => pglistAlloc(uvm, 12 * PAGE, 0, HIGH, 0, 0, 1)), "ENOMEM");
  assert.deepEqual(state(uvm).hints, [8], "a failed contiguous request keeps the hint");
  assert.deepEqual(alloc(uvm, 8 * PAGE, 0, HIGH, 0, 0, 1), [[8, 8]]);
  assert.deepEqual(state(uvm).hints, [16]);
  // The second pass finds [0, 8) now that the first runs out.
  assert.deepEqual(alloc(uvm, 4 * PAGE, 0, HIGH, 0, 0, 1), [[0, 4]]);
  assert.deepEqual(state(uvm).hints, [4]);
  uvm.check();
});

test("pglist: a failed simple request gives its pages back but keeps the moved hints", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  uvm.physload(100, 164, 100, 164, 1);
  for (let p = 110; p < 164; p++) uvm.pageClaim(p);
  const before = state(uvm).free;
  assert.equal(refusal(() => pglistAlloc(uvm, 20 * PAGE, 100 * PAGE, HIGH, 0, 0, 20)), "ENOMEM");
  assert.deepEqual(state(uvm), { free: before, hints: [0, 64] });
  assert.equal(pglistTryAlloc(uvm, 20 * PAGE, 100 * PAGE, HIGH, 0, 0, 20), null);
  uvm.check();
});

test("pglist: the simple path lists pages in the order taken, from the hint on", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  pglistAlloc(uvm, 16 * PAGE, 0, HIGH, 0, 0, 16).free();
  assert.deepEqual(alloc(uvm, 4 * PAGE, 0, HIGH, 0, 0, 4), [[16, 4]]);
  assert.deepEqual(alloc(uvm, 48 * PAGE, 0, 100 * PAGE, 0, 0, 48), [[20, 44], [0, 4]]);
  assert.deepEqual(state(uvm), { free: [[4, 12]], hints: [4] });
  uvm.check();
});

test("pglist: high is exclusive at page granularity and truncated to 32 bits of frame", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  assert.equal(refusal(() => pglistAlloc(uvm, 2 * PAGE, 0, 0x1fff, 0, 0, 1)), "ENOMEM");
  assert.deepEqual(alloc(uvm, PAGE, 0, 0x1fff, 0, 0, 1), [[0, 1]]);
  assert.equal(refusal(() => pglistAlloc(uvm, PAGE, 0, 2 ** 44, 2 * PAGE, 0, 1)), "ENOMEM");
  assert.deepEqual(alloc(uvm, PAGE, 0, 2 ** 44 + 65536, 2 * PAGE, 0, 1), [[2, 1]]);
  uvm.check();
});

test("pglist: alignment below a page is a page; low is rounded up to the alignment", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  // nsegs 1 with one page and alignment 512: the simple path.
  assert.deepEqual(alloc(uvm, 100, 1, HIGH, 512, 0, 1), [[1, 1]]);
  // A 16-page alignment is absolute, and low 1 rounds to frame 16.
  assert.deepEqual(alloc(uvm, 2 * PAGE, 1, HIGH, 16 * PAGE, 0, 1), [[16, 2]]);
  uvm.check();
});

test("pglist: a boundary below the size is EINVAL; below a page it only picks the path", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  const before = snapshot(uvm);
  assert.equal(refusal(() => pglistAlloc(uvm, 2 * PAGE, 0, HIGH, 0, PAGE, 2)), "EINVAL");
  assert.equal(snapshot(uvm), before);
  assert.deepEqual(alloc(uvm, 100, 0, HIGH, 0, 128, 1), [[0, 1]]);
  assert.deepEqual(state(uvm).hints, [1], "the contiguous path set the hint to its end");
  uvm.check();
});

test("pglist: a run never crosses a boundary; it jumps to the boundary instead", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  uvm.pageClaim(0);
  uvm.pageClaim(1);
  // [2, 10) would cross 8: the next candidate is 8.
  assert.deepEqual(alloc(uvm, 8 * PAGE, 0, HIGH, 0, 8 * PAGE, 1), [[8, 8]]);
  uvm.check();
});

test("pglist: free list 0 first, ascending addresses within a list, any load order", () => {
  const uvm = new Uvm();
  uvm.physload(500, 510, 500, 510, 3);
  uvm.physload(0, 10, 0, 10, 5);
  uvm.physload(300, 310, 300, 310, 3);
  uvm.physload(900, 910, 900, 910, 0);
  assert.deepEqual(alloc(uvm, 10 * PAGE, 0, HIGH, 0, 0, 1), [[900, 10]]);
  assert.deepEqual(alloc(uvm, 4 * PAGE, 0, HIGH, 0, 0, 1), [[300, 4]]);
  assert.deepEqual(alloc(uvm, 8 * PAGE, 0, HIGH, 0, 0, 1), [[500, 8]]);
  assert.deepEqual(alloc(uvm, 12 * PAGE, 0, HIGH, 0, 0, 12), [[304, 6], [508, 2], [0, 4]]);
  uvm.check();
});

test("pglist: at or below the reserves a request fails at once and moves no hint", () => {
  const uvm = new Uvm({ reservePagedaemon: 3, reserveKernel: 2 });
  uvm.physload(0, 16, 0, 16, 0);
  assert.deepEqual(alloc(uvm, 10 * PAGE, 0, HIGH, 0, 0, 10), [[0, 10]]);
  assert.equal(uvm.free, 6);
  assert.deepEqual(alloc(uvm, PAGE, 0, HIGH, 0, 0, 1), [[10, 1]]);
  assert.equal(refusal(() => pglistAlloc(uvm, PAGE, 0, HIGH, 0, 0, 1)), "ENOMEM");
  assert.equal(refusal(() => pglistAlloc(uvm, PAGE, 0, HIGH, 2 * PAGE, 0, 1)), "ENOMEM");
  assert.deepEqual(state(uvm).hints, [11]);
  uvm.check();
});

test("pglist: the reserves add up as ints: 2^30 + 2^30 wraps and holds nothing back", () => {
  // NetBSD compares the free count with reserve_pagedaemon + reserve_kernel,
  // an int sum: at 2^31 it is INT_MIN, and every request goes ahead.
  const wraps = new Uvm({ reservePagedaemon: 2 ** 30, reserveKernel: 2 ** 30 });
  wraps.physload(0, 4, 0, 4, 0);
  assert.deepEqual(alloc(wraps, PAGE, 0, HIGH, 0, 0, 1), [[0, 1]]);
  assert.deepEqual(alloc(wraps, 2 * PAGE, 0, HIGH, 0, 0, 2), [[1, 2]]);
  wraps.check();
  // One less is 2^31 - 1, above any count: every request fails at once.
  const holds = new Uvm({ reservePagedaemon: 2 ** 30, reserveKernel: 2 ** 30 - 1 });
  holds.physload(0, 4, 0, 4, 0);
  assert.equal(refusal(() => pglistAlloc(holds, PAGE, 0, HIGH, 0, 0, 1)), "ENOMEM");
  assert.equal(refusal(() => pglistAlloc(holds, 2 * PAGE, 0, HIGH, 0, 0, 2)), "ENOMEM");
  assert.deepEqual(state(holds).hints, [0]);
  holds.check();
});

test("pglist: bad arguments are refused, naming the value, and change nothing", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  const before = snapshot(uvm);
  const bad: [string, unknown[]][] = [
    ["size", [0, 0, HIGH, 0, 0, 1]],
    ["size", [-4096, 0, HIGH, 0, 0, 1]],
    ["size", [1.5, 0, HIGH, 0, 0, 1]],
    ["size", [NaN, 0, HIGH, 0, 0, 1]],
    ["size", [2 ** 53, 0, HIGH, 0, 0, 1]],
    ["size", [2 ** 43 + PAGE, 0, HIGH, 0, 0, 1]],
    ["low", [PAGE, -1, HIGH, 0, 0, 1]],
    ["high", [PAGE, 0, Infinity, 0, 0, 1]],
    ["alignment", [PAGE, 0, HIGH, 3 * PAGE, 0, 1]],
    ["alignment", [PAGE, 0, HIGH, -PAGE, 0, 1]],
    ["boundary", [PAGE, 0, HIGH, 0, 3 * PAGE, 1]],
    ["nsegs", [PAGE, 0, HIGH, 0, 0, -1]],
    ["nsegs", [PAGE, 0, HIGH, 0, 0, 2 ** 31]],
    ["nsegs", [PAGE, 0, HIGH, 0, 0, "1"]],
    ["waitok", [PAGE, 0, HIGH, 0, 0, 1, "yes"]],
  ];
  for (const [name, args] of bad) {
    let message = "";
    try {
      (pglistAlloc as (...a: unknown[]) => unknown)(uvm, ...args);
    } catch (e) {
      assert.ok(e instanceof KernelError);
      assert.equal(e.code, "EINVAL", `${name} ${JSON.stringify(args)}`);
      message = e.message;
    }
    assert.match(message, new RegExp(name), `${name}: ${message}`);
    assert.equal(snapshot(uvm), before, `${name} ${JSON.stringify(args)} changed the state`);
  }
});

test("pglist: where the seed would assert, the request is refused and fully undone", () => {
  const uvm = new Uvm();
  // Free list 0 is searched first: its segment gives 3 pages, then the
  // truncated high (2^44 -> 0) lies below the next segment: the seed's hint
  // would go negative.
  uvm.physload(0, 8, 0, 8, 0);
  uvm.physload(64, 128, 64, 128, 3);
  for (let p = 0; p < 5; p++) uvm.pageClaim(p);
  pglistAlloc(uvm, PAGE, 0, HIGH, 0, 0, 1).free();
  const before = snapshot(uvm);
  assert.equal(refusal(() => pglistAlloc(uvm, 10 * PAGE, 0, 2 ** 44, 0, 0, 10)), "EINVAL");
  assert.equal(snapshot(uvm), before, "pages, queue order and hints are as before");
  uvm.check();
  // Enough in the first segment: the seed never reaches the second one.
  assert.deepEqual(alloc(uvm, 2 * PAGE, 0, 2 ** 44 + 8 * PAGE, 0, 0, 2), [[6, 2]]);
  uvm.check();
});

test("pglist: page lists list their frames and go back once", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  uvm.physload(2 ** 40, 2 ** 40 + 64, 2 ** 40, 2 ** 40 + 64, 0);
  const list = pglistAlloc(uvm, 6 * PAGE, 0, 2 ** 53 - 1, 0, 0, 6);
  assert.equal(list.length, 6);
  assert.equal(list.pfn(0), 0);
  assert.deepEqual(list.pfns(), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(list.runs(), [[0, 6]]);
  assert.equal(refusal(() => list.pfn(6)), "EINVAL");
  assert.equal(refusal(() => uvm.pageFree(3)), "BADFREE", "a list page goes back with its list");
  assert.equal(list.freed, false);
  list.free();
  assert.equal(list.freed, true);
  assert.equal(uvm.free, 128);
  const before = snapshot(uvm);
  assert.equal(refusal(() => pglistFree(uvm, list)), "BADFREE");
  const other = new Uvm();
  other.physload(0, 64, 0, 64, 0);
  const foreign = pglistAlloc(other, PAGE, 0, HIGH, 0, 0, 1);
  assert.equal(refusal(() => pglistFree(uvm, foreign)), "EINVAL");
  assert.equal(snapshot(uvm), before);
  uvm.check();
});

test("pglist: a freed list goes back on its queue top page first, however its pages were queued", () => {
  // Free list 0 from its head, as frame numbers.
  const queue = (uvm: Uvm): number[] => {
    const pm = uvmInside(uvm).physmem;
    const out: number[] = [];
    for (let id = pm.nextOf(0); id !== 0; id = pm.nextOf(id)) out.push(pm.pfnOf(id));
    return out;
  };
  for (const scrambled of [false, true]) {
    const uvm = new Uvm();
    uvm.physload(0, 64, 0, 64, 0);
    for (let p = 0; p < 32; p++) uvm.pageClaim(p);
    for (let p = 0; p < 16; p++) uvm.pageFree(p);
    // 16..31 freed upward (one chain on the queue) or in a shuffled order (none).
    const order = scrambled
      ? [21, 16, 30, 18, 27, 23, 17, 31, 19, 25, 20, 28, 22, 29, 24, 26]
      : [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31];
    for (let p = 0; p < 16; p++) uvm.pageClaim(p);
    for (const p of order) uvm.pageFree(p);
    const rest = queue(uvm).filter((p) => p < 16 || p >= 32);
    const list = pglistAlloc(uvm, 16 * PAGE, 0, HIGH, 16 * PAGE, 0, 1);
    assert.deepEqual(list.runs(), [[16, 16]]);
    assert.deepEqual(queue(uvm), rest);
    list.free();
    const top = [31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16];
    assert.deepEqual(queue(uvm), [...top, ...rest], scrambled ? "shuffled" : "upward");
    uvm.check();
    // The pages leave the queue again as the chain the free made.
    assert.equal(uvm.pageAlloc(0), 31);
    assert.equal(uvm.pageAlloc(0), 30);
    uvm.check();
  }
});

test("pglist: waitok without waiting: WOULDBLOCK changes nothing; contiguous gives ENOMEM", () => {
  const uvm = new Uvm();
  uvm.physload(0, 16, 0, 16, 0);
  for (let p = 0; p < 16; p += 2) uvm.pageClaim(p);
  pglistAlloc(uvm, PAGE, 0, HIGH, 0, 0, 1).free();
  const before = snapshot(uvm);
  assert.equal(refusal(() => pglistAlloc(uvm, 9 * PAGE, 0, HIGH, 0, 0, 9, true)), "WOULDBLOCK");
  assert.equal(snapshot(uvm), before);
  assert.deepEqual(pglistAlloc(uvm, 2 * PAGE, 0, HIGH, 0, 0, 2, true).runs(), [[3, 1], [5, 1]]);
  // Nothing reclaimable: the aggressive search ends at once.
  assert.equal(refusal(() => pglistAlloc(uvm, 2 * PAGE, 0, HIGH, 0, 0, 1, true)), "ENOMEM");
  uvm.check();
});

test("pglist: pglistAllocWait's simple path keeps its pages and waits for the rest", async () => {
  const uvm = new Uvm();
  uvm.physload(0, 16, 0, 16, 0);
  const held = pglistAlloc(uvm, 12 * PAGE, 0, HIGH, 0, 0, 12);
  const pending = pglistAllocWait(uvm, 6 * PAGE, 0, HIGH, 0, 0, 6);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(uvm.free, 0, "the four free pages are already held");
  held.free();
  const list = await pending;
  assert.equal(list.length, 6);
  assert.deepEqual(list.runs().slice(0, 1), [[12, 4]]);
  uvm.check();
});

test("pglist: aborting pglistAllocWait gives every held page back", async () => {
  const uvm = new Uvm();
  uvm.physload(0, 16, 0, 16, 0);
  const held = pglistAlloc(uvm, 12 * PAGE, 0, HIGH, 0, 0, 12);
  const ctl = new AbortController();
  const pending = pglistAllocWait(uvm, 6 * PAGE, 0, HIGH, 0, 0, 6, ctl.signal);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(uvm.free, 0);
  ctl.abort();
  await assert.rejects(pending, (e: unknown) => e instanceof KernelError && e.code === "EINTR");
  assert.equal(uvm.free, 4);
  held.free();
  assert.equal(uvm.free, 16);
  await assert.rejects(
    pglistAllocWait(uvm, PAGE, 0, HIGH, 0, 0, 1, ctl.signal),
    (e: unknown) => e instanceof KernelError && e.code === "EINTR",
  );
  await assert.rejects(
    pglistAllocWait(uvm, 0, 0, HIGH, 0, 0, 1),
    (e: unknown) => e instanceof KernelError && e.code === "EINVAL",
  );
  uvm.check();
});

test("pglist: the aggressive search collects pages the daemon frees until a run forms", async () => {
  const uvm = new Uvm();
  uvm.physload(0, 32, 0, 32, 0);
  // Even pages hold a page cache; odd pages are free: no two-page run.
  const cache: number[] = [];
  for (let p = 0; p < 32; p += 2) {
    uvm.pageClaim(p);
    cache.push(p);
  }
  let waits = 0;
  uvm.hooks = {
    reclaimable: () => cache.length > 0,
    wait: () => {
      waits++;
      // The daemon evicts the newest cache page.
      uvm.pageFree(cache.pop()!);
      return Promise.resolve();
    },
    kick: () => {},
  };
  assert.equal(
    refusal(() => pglistAlloc(uvm, 4 * PAGE, 0, HIGH, 4 * PAGE, 0, 1, true)),
    "WOULDBLOCK",
  );
  const list = await pglistAllocWait(uvm, 4 * PAGE, 0, HIGH, 4 * PAGE, 0, 1);
  assert.deepEqual(list.runs(), [[28, 4]]);
  assert.equal(waits, 2, "pages 30 and 28 had to be evicted");
  for (let p = 0; p < 32; p++) assert.equal(uvm.pageFlags(p) & PG_PGLCA, 0);
  assert.equal(uvm.free, 14, "the odd pages 1 to 27 went back");
  uvm.check();
});

test("pglist: the aggressive search stops with ENOMEM when nothing is reclaimable", async () => {
  const uvm = new Uvm();
  uvm.physload(0, 16, 0, 16, 0);
  for (let p = 0; p < 16; p += 2) uvm.pageClaim(p);
  const before = snapshot(uvm);
  await assert.rejects(
    pglistAllocWait(uvm, 2 * PAGE, 0, HIGH, 0, 0, 1),
    (e: unknown) => e instanceof KernelError && e.code === "ENOMEM",
  );
  assert.deepEqual(JSON.parse(snapshot(uvm)).free, JSON.parse(before).free);
  uvm.check();
});

test("pglist: a whole-segment search over a fragmented million pages is quick", () => {
  const uvm = new Uvm();
  uvm.physload(256, 256 + 2 ** 20, 256, 256 + 2 ** 20, 0);
  const r = new Mulberry32(1);
  for (let p = 256; p < 256 + 2 ** 20; p++) if (r.next() % 2 === 0) uvm.pageClaim(p);
  const t = performance.now();
  for (let i = 0; i < 1000; i++) {
    assert.equal(pglistTryAlloc(uvm, 64 * PAGE, 0, 2 ** 40, PAGE, 0, 1), null);
  }
  const perCall = (performance.now() - t) / 1000;
  assert.ok(perCall < 0.1, `${perCall} ms per failing search`);
  // One 64-page free run near the end is found.
  for (let p = 2 ** 20 - 100; p < 2 ** 20 - 36; p++) if (!uvm.isFree(p)) uvm.pageFree(p);
  for (const p of [2 ** 20 - 101, 2 ** 20 - 36]) if (uvm.isFree(p)) uvm.pageClaim(p);
  assert.deepEqual(alloc(uvm, 64 * PAGE, 0, 2 ** 40, PAGE, 0, 1), [[2 ** 20 - 100, 64]]);
  uvm.check();
});

// ---- against the plain port -------------------------------------------------

/**
 * Random operations applied to the fast allocator and the page-by-page port
 * side by side: same answers, same free pages, same hints, and `check()` after
 * every step.
 */
function differential(
  seed: number,
  steps: number,
  segBase: number,
  bigAlign: boolean,
  physseg: PhysSegStrategy = "bsearch",
): void {
  const r = new Mulberry32(seed);
  const pick = <T>(a: T[]): T => a[r.below(a.length)]!;
  const ps = r.below(4) === 0 ? pick([512, 8192]) : PAGE;
  const rpd = r.below(3) === 0 ? r.below(20) : 0;
  const rk = r.below(3) === 0 ? r.below(20) : 0;
  const uvm = new Uvm({ pageSize: ps, reservePagedaemon: rpd, reserveKernel: rk, physseg });
  const ref = new ReferencePglist(ps, rpd, rk, physseg);
  const segs: [number, number][] = [];
  let cur = segBase + r.below(300);
  // BIGFIRST matters with several segments per free list, some of one size.
  const many = physseg === "bigfirst";
  for (let i = 0, n = many ? 3 + r.below(6) : 1 + r.below(4); i < n; i++) {
    const len = many && i > 0 && r.below(3) === 0
      ? ((k) => segs[k]![1] - segs[k]![0])(r.below(i))
      : 16 + r.below(r.below(2) ? 2000 : 200);
    segs.push([cur, cur + len]);
    cur += len + (r.below(2) ? 0 : r.below(300));
  }
  for (let i = segs.length - 1; i > 0; i--) {
    const j = r.below(i + 1);
    [segs[i], segs[j]] = [segs[j]!, segs[i]!];
  }
  for (const [s, e] of segs) {
    let as = s, ae = e;
    if (r.below(3) === 0) {
      as = s + r.below(e - s);
      ae = as + r.below(e - as + 1);
    }
    const fl = many ? pick([0, 3]) : r.below(3) === 0 ? r.below(6) : pick([0, 3, 5]);
    uvm.physload(s, e, as, ae, fl);
    ref.physload(s, e, as, ae, fl);
  }
  const maxPfn = Math.max(...segs.map((x) => x[1]));
  const lists: [PageList, number[]][] = [];
  const claimed: number[] = [];
  for (let step = 0; step < steps; step++) {
    const t = r.below(100);
    if (t < 12) {
      const p = r.below(maxPfn + 10);
      for (let q = p; q < p + 1 + r.below(32); q++) {
        if (!uvm.isFree(q)) break;
        assert.ok(ref.isFree(q));
        uvm.pageClaim(q);
        ref.take(q);
        claimed.push(q);
      }
    } else if (t < 20 && claimed.length > 0) {
      const q = claimed.splice(r.below(claimed.length), 1)[0]!;
      uvm.pageFree(q);
      ref.give(q);
    } else if (t < 38 && lists.length > 0) {
      const [list, pfns] = lists.splice(r.below(lists.length), 1)[0]!;
      list.free();
      ref.freeList(pfns);
    } else {
      const pages = r.below(4) === 0 ? 1 + r.below(300) : 1 + r.below(24);
      const size = r.below(4) === 0 ? Math.max(1, pages * ps - r.below(ps)) : pages * ps;
      const al = r.below(2) ? 0 : 2 ** r.below(bigAlign ? 47 : 23);
      const bd = r.below(2) ? 0 : 2 ** r.below(bigAlign ? 50 : 27);
      const nsegs = pick([1, 2, pages, pages + 3, 2147483647, r.below(pages + 2)]);
      const low = r.below(2) ? 0 : pick([r.below(maxPfn * ps), r.below(maxPfn) * ps, 1]);
      const high = r.below(10) === 0
        ? pick([2 ** 44, 2 ** 44 + r.below(maxPfn + 10) * ps, 2 ** 45 - 1])
        : pick([HIGH, 2 ** 53 - 1, r.below(maxPfn * ps + 10 * ps), r.below(maxPfn + 5) * ps, 0]);
      let want: number[] | null | string;
      try {
        want = ref.alloc(size, low, high, al, bd, nsegs);
      } catch (e) {
        want = (e as KernelError).code === "EFAULT" ? "EINVAL" : (e as KernelError).code;
      }
      let got: PageList | null | string;
      try {
        got = pglistTryAlloc(uvm, size, low, high, al, bd, nsegs);
      } catch (e) {
        got = (e as KernelError).code;
      }
      const what =
        `seed ${seed} step ${step}: alloc(${size}, ${low}, ${high}, ${al}, ${bd}, ${nsegs})`;
      if (typeof want === "string" || want === null) {
        assert.equal(got, want, what);
      } else {
        assert.ok(got !== null && typeof got !== "string", `${what}: got ${got}`);
        assert.deepEqual(got.pfns(), want, what);
        lists.push([got, want]);
      }
    }
    assert.deepEqual(state(uvm), ref.state(), `seed ${seed} step ${step}`);
    assert.equal(uvm.free, ref.nfree);
    uvm.check();
  }
}

test("pglist: random requests choose exactly the plain port's pages and hints", () => {
  for (let seed = 1; seed <= 12; seed++) differential(seed, 250, 0, false);
});

test("pglist: under BIGFIRST, random requests choose exactly the plain port's pages and hints", () => {
  for (let seed = 1; seed <= 12; seed++) differential(seed, 250, 0, false, "bigfirst");
  for (let seed = 13; seed <= 15; seed++) differential(seed, 120, 2147480000, true, "bigfirst");
});

test("pglist: BIGFIRST searches a free list's smallest segment first, the last loaded of a size first", () => {
  const uvm = new Uvm({ physseg: "bigfirst" });
  uvm.physload(0, 40, 0, 40, 3);
  uvm.physload(100, 120, 100, 120, 3);
  uvm.physload(200, 240, 200, 240, 3);
  uvm.physload(300, 320, 300, 320, 0);
  uvm.physload(400, 410, 400, 410, 3);
  // Free list 0 first; then in list 3: 10 pages, 20, the 40s (last loaded first).
  assert.deepEqual(alloc(uvm, 4 * PAGE, 0, HIGH, 0, 0, 1), [[300, 4]]);
  assert.deepEqual(alloc(uvm, 20 * PAGE, 0, HIGH, 0, 0, 1), [[100, 20]]);
  assert.deepEqual(alloc(uvm, 30 * PAGE, 0, HIGH, 0, 0, 1), [[200, 30]]);
  assert.deepEqual(alloc(uvm, 30 * PAGE, 0, HIGH, 0, 0, 1), [[0, 30]]);
  assert.deepEqual(alloc(uvm, 30 * PAGE, 0, HIGH, 0, 0, 30), [
    [304, 16],
    [400, 10],
    [230, 4],
  ]);
  assert.deepEqual(state(uvm).hints, [30, 20, 34, 4, 10], "hints are listed by address");
  uvm.check();
  const bsearch = new Uvm();
  bsearch.physload(100, 120, 100, 120, 3);
  bsearch.physload(0, 40, 0, 40, 3);
  assert.deepEqual(alloc(bsearch, 20 * PAGE, 0, HIGH, 0, 0, 1), [[0, 20]]);
  assert.equal(refusal(() => new Uvm({ physseg: "biggest" as PhysSegStrategy })), "EINVAL");
});

test("pglist: segments past frame 2^31 and 2^32 and huge alignments follow the seed's int arithmetic", () => {
  for (let seed = 1; seed <= 4; seed++) differential(seed, 120, 2147480000, true);
  for (let seed = 5; seed <= 8; seed++) differential(seed, 120, 4294967296 + 100, true);
  for (let seed = 9; seed <= 11; seed++) differential(seed, 120, 0, true);
});

test("pglist: near frame 2^31 the literal port decides, busy pages and all", () => {
  const uvm = new Uvm();
  const ref = new ReferencePglist();
  const T = 2 ** 31;
  for (const [s, e] of [[T - 300, T - 20], [T - 10, T + 50]] as const) {
    uvm.physload(s, e, s, e, 0);
    ref.physload(s, e, s, e, 0);
  }
  for (let p = T - 300; p < T - 20; p += 7) {
    uvm.pageClaim(p);
    ref.take(p);
  }
  const requests: [number, number, number, number, number, number][] = [
    // Contiguous: alignment plus request plus segment end reach 2^31.
    [25 * PAGE, 0, (T - 30) * PAGE, PAGE, 0, 1],
    [5 * PAGE, 0, (T - 30) * PAGE, 32 * PAGE, 0, 1],
    [6 * PAGE, 0, (T - 30) * PAGE, PAGE, 0, 1],
    [3 * PAGE, 0, 2 ** 53 - 1, 2 ** 20 * PAGE, 0, 1],
    [6 * PAGE, 0, (T - 20) * PAGE, PAGE, 8 * PAGE, 1],
    // Simple: the second segment straddles 2^31; a high below 2^31 lets it scan.
    [20 * PAGE, 0, (T - 5) * PAGE, 0, 0, 20],
    [400 * PAGE, 0, (T - 5) * PAGE, 0, 0, 400],
    [4 * PAGE, 0, 2 ** 53 - 1, 0, 0, 4],
  ];
  for (const args of requests) {
    const [size, low, high, al, bd, nsegs] = args;
    let want: number[] | null | string;
    try {
      want = ref.alloc(size, low, high, al, bd, nsegs);
    } catch (e) {
      want = (e as KernelError).code === "EFAULT" ? "EINVAL" : (e as KernelError).code;
    }
    let got: number[] | null | string;
    try {
      got = pglistTryAlloc(uvm, size, low, high, al, bd, nsegs)?.pfns() ?? null;
    } catch (e) {
      got = (e as KernelError).code;
    }
    assert.deepEqual(got, want, JSON.stringify(args));
    assert.deepEqual(state(uvm), ref.state(), JSON.stringify(args));
    uvm.check();
  }
});

test("pglist: an aborted wait puts back the hints its passes moved", async () => {
  const uvm = new Uvm();
  uvm.physload(0, 16, 0, 16, 0);
  uvm.physload(100, 116, 100, 116, 0);
  for (let p = 4; p < 16; p++) uvm.pageClaim(p);
  for (let p = 100; p < 116; p++) uvm.pageClaim(p);
  const ctl = new AbortController();
  const pending = pglistAllocWait(uvm, 6 * PAGE, 0, HIGH, 0, 0, 6, ctl.signal);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(state(uvm), { free: [], hints: [16, 16] }, "the pass ran out of both");
  // Another request moves the second segment's hint meanwhile (the waiter
  // wakes up, tries again and finds nothing).
  uvm.pageFree(105);
  assert.deepEqual(alloc(uvm, PAGE, 100 * PAGE, HIGH, 0, 0, 1), [[105, 1]]);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(state(uvm).hints, [16, 6]);
  ctl.abort();
  await assert.rejects(pending, (e: unknown) => e instanceof KernelError && e.code === "EINTR");
  assert.deepEqual(state(uvm), { free: [[0, 4]], hints: [0, 6] });
  uvm.check();
});

// ---- one allocator's state is its own -----------------------------------------

/** A scripted run on one allocator: random synchronous requests and frees; its answers. */
function* script(uvm: Uvm, seed: number): Generator<void, string[], void> {
  const r = new Mulberry32(seed);
  const answers: string[] = [];
  const lists: PageList[] = [];
  for (let step = 0; step < 300; step++) {
    if (lists.length > 0 && r.below(3) === 0) {
      lists.splice(r.below(lists.length), 1)[0]!.free();
      answers.push("free");
    } else {
      const pages = 1 + r.below(40);
      const contig = r.below(2) === 0;
      const list = pglistTryAlloc(
        uvm,
        pages * PAGE,
        r.below(2) * 64 * PAGE,
        HIGH,
        contig ? PAGE << r.below(5) : 0,
        0,
        contig ? 1 : pages,
      );
      answers.push(JSON.stringify(list?.runs() ?? null));
      if (list !== null) lists.push(list);
    }
    answers.push(JSON.stringify(state(uvm)));
    uvm.check();
    yield;
  }
  for (const l of lists) l.free();
  return answers;
}

function fresh(): Uvm {
  const uvm = new Uvm();
  uvm.physload(0, 512, 0, 512, 0);
  uvm.physload(1024, 1600, 1024, 1600, 3);
  for (let p = 0; p < 512; p += 5) uvm.pageClaim(p);
  return uvm;
}

function runAlone(seed: number): string[] {
  const gen = script(fresh(), seed);
  for (;;) {
    const r = gen.next();
    if (r.done) return r.value;
  }
}

test("pglist: two allocators driven in turn give the answers each gives alone", async () => {
  const alone = [runAlone(1), runAlone(2)];
  const a = fresh();
  const b = fresh();
  const hooks = [a.hooks, b.hooks];
  // a: a simple request holding pages and an aggressive contiguous search
  // holding a's lock, both asleep.
  const ctl = new AbortController();
  a.hooks = { ...a.hooks, reclaimable: () => true };
  const asleep = [
    pglistAllocWait(a, 4000 * PAGE, 0, HIGH, 0, 0, 4000, ctl.signal),
    pglistAllocWait(a, 8000 * PAGE, 0, HIGH, 0, 0, 1, ctl.signal),
  ];
  await new Promise((r) => setTimeout(r, 0));
  a.hooks = { ...a.hooks, reclaimable: () => false };
  assert.equal(refusal(() => pglistAlloc(a, 2 * PAGE, 0, HIGH, 0, 0, 1, true)), "WOULDBLOCK");
  // b's aggressive search runs meanwhile: its daemon gives back claimed
  // pages until a run of 8 forms.
  const cache: number[] = [];
  for (let p = 0; p < 512; p += 5) cache.push(p);
  b.hooks = {
    reclaimable: () => cache.length > 0,
    wait: () => {
      b.pageFree(cache.pop()!);
      return Promise.resolve();
    },
    kick: () => {},
  };
  const got = await Promise.race([
    pglistAllocWait(b, 8 * PAGE, 0, 512 * PAGE, 0, 0, 1),
    new Promise<null>((r) => setTimeout(() => r(null), 2000)),
  ]);
  assert.ok(got !== null, "b's search waited on a's lock");
  assert.equal(got.runs().length, 1);
  got.free();
  for (const p of cache) b.pageFree(p);
  for (let p = 0; p < 512; p += 5) if (b.isFree(p)) b.pageClaim(p);
  ctl.abort();
  for (const p of asleep) await assert.rejects(p);
  [a.hooks, b.hooks] = hooks as [typeof a.hooks, typeof b.hooks];
  assert.deepEqual(state(a), state(fresh()));
  assert.deepEqual(state(b), state(fresh()));
  // Then synchronous traffic on both in turn.
  const ga = script(a, 1);
  const gb = script(b, 2);
  let ra = ga.next();
  let rb = gb.next();
  while (!ra.done || !rb.done) {
    if (!ra.done) ra = ga.next();
    if (!rb.done) rb = gb.next();
  }
  assert.deepEqual(ra.value, alone[0]);
  assert.deepEqual(rb.value, alone[1]);
});

test("pglist: an allocator argument that is not a Uvm is refused by name", async () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  const list = pglistAlloc(uvm, PAGE, 0, HIGH, 0, 0, 1);
  const before = snapshot(uvm);
  const hostile: unknown[] = [undefined, null, 1n, "uvm", NaN, true, {}, uvmInside(uvm).physmem, [
    uvm,
  ]];
  for (const bad of hostile) {
    const named = (e: unknown) =>
      e instanceof KernelError && e.code === "EINVAL" && /uvm must be a Uvm/.test(e.message);
    const any = (f: unknown) => f as (...a: unknown[]) => unknown;
    assert.throws(() => any(pglistAlloc)(bad, PAGE, 0, HIGH, 0, 0, 1), named);
    assert.throws(() => any(pglistTryAlloc)(bad, PAGE, 0, HIGH, 0, 0, 1), named);
    assert.throws(() => any(pglistFree)(bad, list), named);
    await assert.rejects(
      async () => await any(pglistAllocWait)(bad, PAGE, 0, HIGH, 0, 0, 1),
      named,
    );
  }
  assert.equal(snapshot(uvm), before);
  list.free();
  uvm.check();
});
