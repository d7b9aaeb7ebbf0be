import { test } from "node:test";
import assert from "node:assert/strict";
import { KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import {
  loadRam,
  Uvm,
  UVM_PGA_FALLBACK,
  UVM_PGA_PAGEDAEMON,
  UVM_PGA_USERESERVE,
  uvmInside,
} from "./page.ts";
import { type PageList, pglistTryAlloc } from "./pglist.ts";
import {
  BLOCK_PAGES,
  CHUNK_PAGES,
  chunkOf,
  PG_FREE,
  PG_PGLIST,
  TOUCHED,
  VM_FREELIST_DEFAULT,
  VM_FREELIST_FIRST16,
  VM_FREELIST_FIRST4G,
} from "./physseg.ts";
import { refusal } from "./_test_util.ts";

/** The free pages in the order uvm_pagealloc would hand them out, without taking them. */
function queueOrder(uvm: Uvm): number[] {
  const pm = uvmInside(uvm).physmem;
  const out: number[] = [];
  for (let h = 0; h < 6; h++) {
    for (
      let id = uvmInside(uvm).physmem.nextOf(h);
      id !== h;
      id = uvmInside(uvm).physmem.nextOf(id)
    ) out.push(pm.pfnOf(id));
  }
  return out;
}

test("page: uvm_pagealloc hands out the highest page first, free list 0 first", () => {
  const uvm = new Uvm();
  uvm.physload(0, 10, 0, 10, VM_FREELIST_FIRST16);
  uvm.physload(100, 110, 100, 110, VM_FREELIST_DEFAULT);
  uvm.check();
  assert.equal(uvm.free, 20);
  assert.equal(uvm.freeCount(VM_FREELIST_FIRST16), 10);
  assert.equal(uvm.pageAlloc(), 109);
  assert.equal(uvm.pageAlloc(), 108);
  assert.equal(uvm.pageAlloc(VM_FREELIST_FIRST16), 9);
  for (let i = 0; i < 8; i++) uvm.pageAlloc();
  assert.equal(uvm.freeCount(VM_FREELIST_DEFAULT), 0);
  assert.equal(uvm.pageAlloc(), 8, "list 0 empty: list 5 next");
  assert.equal(uvm.pageAlloc(VM_FREELIST_DEFAULT), -1, "one list only");
  assert.equal(uvm.pageAlloc(VM_FREELIST_DEFAULT, UVM_PGA_FALLBACK), 7);
  uvm.check();
});

test("page: uvm_pagefree puts the page back at the head (LIFO)", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  const a = uvm.pageAlloc();
  const b = uvm.pageAlloc();
  assert.equal(uvm.isFree(a), false);
  uvm.pageFree(a);
  uvm.pageFree(b);
  assert.equal(uvm.isFree(a), true);
  assert.equal(uvm.pageAlloc(), b);
  assert.equal(uvm.pageAlloc(), a);
  uvm.check();
});

test("page: single-page allocation and free are O(1) whatever the memory size", () => {
  const small = new Uvm();
  small.physload(0, 1024, 0, 1024, 0);
  const big = new Uvm();
  big.physload(0, 1 << 22, 0, 1 << 22, 0);
  const time = (uvm: Uvm) => {
    const t = performance.now();
    for (let i = 0; i < 200_000; i++) uvm.pageFree(uvm.pageAlloc());
    return performance.now() - t;
  };
  let ts = Infinity;
  let tb = Infinity;
  for (let round = 0; round < 4; round++) {
    ts = Math.min(ts, time(small));
    tb = Math.min(tb, time(big));
  }
  assert.ok(tb < ts * 4 + 5, `4M pages ${tb} ms vs 1K pages ${ts} ms`);
  small.check();
});

test("page: the reserves keep pages back from ordinary callers", () => {
  const uvm = new Uvm({ reservePagedaemon: 2, reserveKernel: 4 });
  uvm.physload(0, 8, 0, 8, 0);
  const got: number[] = [];
  for (let p; (p = uvm.pageAlloc()) >= 0;) got.push(p);
  assert.equal(got.length, 4, "stops at reserve_kernel");
  assert.ok(uvm.pageAlloc(-1, UVM_PGA_USERESERVE) >= 0);
  assert.ok(uvm.pageAlloc(-1, UVM_PGA_USERESERVE) >= 0);
  assert.equal(uvm.free, 2);
  assert.equal(uvm.pageAlloc(-1, UVM_PGA_USERESERVE), -1, "reserve_pagedaemon left");
  assert.ok(uvm.pageAlloc(-1, UVM_PGA_USERESERVE | UVM_PGA_PAGEDAEMON) >= 0);
  uvm.check();
});

test("page: reserves are ints; anything else is refused, naming the option and its value", () => {
  assert.equal(new Uvm({ reserveKernel: 2 ** 31 - 1 }).reserveKernel, 2 ** 31 - 1);
  for (const name of ["reservePagedaemon", "reserveKernel"] as const) {
    for (const v of [2 ** 31, -1, 1.5, NaN, Infinity, 10n, "3", true]) {
      assert.throws(
        () => new Uvm({ [name]: v as number }),
        (e: unknown) =>
          e instanceof KernelError && e.code === "EINVAL" &&
          e.message.startsWith(name === "reserveKernel" ? "reserve_kernel" : "reserve_pagedaemon"),
        `${name} ${String(v)}`,
      );
    }
  }
});

test("page: strategy is the segment order uvm_pglistalloc searches in", () => {
  assert.equal(new Uvm().strategy, "bsearch");
  assert.equal(new Uvm({ physseg: "bigfirst" }).strategy, "bigfirst");
});

test("page: cacheFrames counts the free pages live and refuses an owner that is not a byte", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  const frames = uvm.cacheFrames(2);
  assert.equal(frames.freePages, 64);
  assert.ok(frames.handleLimit > 64);
  const ids = new Int32Array(8);
  assert.equal(frames.allocCachePages(ids, 0, 8), 8);
  assert.equal(frames.freePages, 56);
  assert.equal(uvm.owner(63), 2, "the highest page goes first");
  frames.freeCachePages(ids, 0, 8);
  assert.equal(uvm.free, 64);
  for (const owner of [256, -1, 1.5, NaN, 1n, "2", undefined, null, true]) {
    assert.equal(refusal(() => uvm.cacheFrames(owner as number)), "EINVAL", String(owner));
  }
  uvm.check();
});

test("page: a batch of uvm_pagealloc takes the same pages, kicking the daemon once", () => {
  const one = new Uvm({ reserveKernel: 3 });
  const many = new Uvm({ reserveKernel: 3 });
  for (const u of [one, many]) {
    u.physload(0, 100, 0, 100, 5);
    u.physload(1000, 1100, 1000, 1100, 0);
  }
  let kicks = 0;
  many.hooks = { ...many.hooks, kick: () => kicks++ };
  const ids = new Float64Array(300);
  assert.equal(many.cacheFrames(7).allocCachePages(ids, 10, 150), 150);
  assert.equal(kicks, 1);
  assert.equal(many.cacheFrames(7).allocCachePages(ids, 160, 140), 47, "stops at reserve_kernel");
  assert.equal(kicks, 2);
  const pfns = Array.from(ids.subarray(10, 207), (id) => uvmInside(many).physmem.pfnOf(id));
  const want: number[] = [];
  for (let p; (p = one.pageAlloc()) >= 0;) want.push(p);
  assert.deepEqual(pfns, want);
  assert.equal(many.owner(pfns[0]!), 7);
  assert.equal(many.owner(pfns[196]!), 7);
  assert.throws(() => many.cacheFrames(0).allocCachePages(ids, 290, 20), KernelError);
  many.check();
});

test("page: batches of uvm_pagealloc match it one by one across chunks, between random frees", () => {
  const one = new Uvm();
  const many = new Uvm();
  for (const u of [one, many]) {
    u.physload(5000, 5000 + 3 * CHUNK_PAGES, 5000, 5000 + 3 * CHUNK_PAGES, 0);
    u.physload(5, 3000, 5, 3000, 3);
  }
  const r = new Mulberry32(3);
  const held: number[] = [];
  const ids = new Float64Array(200000);
  for (let step = 0; step < 60; step++) {
    if (r.below(3) !== 0 || held.length === 0) {
      const n = 1 + r.below(r.below(4) === 0 ? 150000 : 500);
      const got = many.cacheFrames(9).allocCachePages(ids, 0, n);
      for (let i = 0; i < got; i++) {
        const pfn = uvmInside(many).physmem.pfnOf(ids[i]!);
        assert.equal(pfn, one.pageAlloc(), `step ${step}, page ${i}`);
        held.push(pfn);
      }
      if (got < n) assert.equal(one.pageAlloc(), -1);
    } else {
      for (let k = r.below(3000); k > 0 && held.length > 0; k--) {
        const pfn = held.splice(r.below(held.length), 1)[0]!;
        one.pageFree(pfn);
        many.pageFree(pfn);
      }
    }
    assert.deepEqual(queueOrder(many).slice(0, 5000), queueOrder(one).slice(0, 5000));
    many.check();
  }
  many.check(true);
  assert.deepEqual(queueOrder(many), queueOrder(one));
});

test("page: a batch of uvm_pagefree leaves the queues as frees one by one do", () => {
  const one = new Uvm();
  const many = new Uvm();
  for (const u of [one, many]) {
    u.physload(5000, 5000 + 2 * CHUNK_PAGES + 9, 5000, 5000 + 2 * CHUNK_PAGES + 9, 0);
    u.physload(5, 3000, 5, 3000, 3);
  }
  const r = new Mulberry32(8);
  const ids = new Float64Array(140000);
  for (let round = 0; round < 12; round++) {
    const n = many.cacheFrames(0).allocCachePages(ids, 0, 1 + r.below(130000));
    for (let i = 0; i < n; i++) one.pageAlloc();
    // Give them back in stretches up, down and scattered.
    const order = Array.from(ids.subarray(0, n));
    for (let k = 0; k < order.length;) {
      const len = 1 + r.below(3000);
      const part = order.slice(k, k + len);
      const how = r.below(3);
      if (how === 1) part.reverse();
      if (how === 2) part.sort(() => r.below(3) - 1);
      order.splice(k, part.length, ...part);
      k += len;
    }
    const cut = r.below(order.length + 1);
    const batch = Float64Array.from(order);
    many.cacheFrames(0).freeCachePages(batch, 0, cut);
    for (let i = 0; i < cut; i++) one.pageFree(uvmInside(one).physmem.pfnOf(order[i]!));
    assert.deepEqual(queueOrder(many), queueOrder(one), `round ${round}`);
    many.check();
    many.cacheFrames(0).freeCachePages(batch, cut, order.length - cut);
    for (let i = cut; i < order.length; i++) one.pageFree(uvmInside(one).physmem.pfnOf(order[i]!));
    assert.deepEqual(queueOrder(many), queueOrder(one), `round ${round}, the rest`);
    many.check();
  }
  many.check(true);
});

test("page: a batch of uvm_pagefree refuses a free, repeated or listed page and changes nothing", () => {
  const uvm = new Uvm();
  uvm.physload(0, 256, 0, 256, 0);
  const ids = new Float64Array(8);
  uvm.cacheFrames(0).allocCachePages(ids, 0, 6);
  const list = pglistTryAlloc(uvm, 2 * 4096, 0, 2 ** 40, 0, 0, 1)!;
  const listed = uvmInside(uvm).physmem.idOf(list.pfn(0));
  const order = queueOrder(uvm);
  const free = uvm.free;
  const cases: number[][] = [
    [ids[0]!, ids[1]!, uvmInside(uvm).physmem.idOf(3)],
    [ids[0]!, ids[1]!, ids[0]!],
    [ids[2]!, listed],
    [ids[2]!, 7],
  ];
  for (const c of cases) {
    assert.equal(
      refusal(() => uvm.cacheFrames(0).freeCachePages(Float64Array.from(c), 0, c.length)),
      "BADFREE",
    );
    assert.deepEqual(queueOrder(uvm), order, JSON.stringify(c));
    assert.equal(uvm.free, free);
    uvm.check();
  }
  list.free();
  uvm.cacheFrames(0).freeCachePages(ids, 0, 6);
  assert.equal(uvm.free, 256);
  uvm.check(true);
});

test("page: uvm_pagealloc kicks the page daemon", () => {
  const uvm = new Uvm();
  uvm.physload(0, 4, 0, 4, 0);
  let kicks = 0;
  uvm.hooks = { ...uvm.hooks, kick: () => kicks++ };
  uvm.pageAlloc();
  uvm.pageAlloc(3);
  assert.equal(kicks, 2);
});

test("page: bad frees and claims are refused and change nothing", () => {
  const uvm = new Uvm();
  uvm.physload(0, 16, 0, 16, 0);
  const p = uvm.pageAlloc();
  uvm.pageFree(p);
  const order = queueOrder(uvm);
  assert.equal(refusal(() => uvm.pageFree(p)), "BADFREE");
  assert.equal(refusal(() => uvm.pageFree(16)), "EINVAL");
  assert.equal(refusal(() => uvm.pageFree(-1)), "EINVAL");
  assert.equal(refusal(() => uvm.pageFree(1.5)), "EINVAL");
  assert.equal(refusal(() => uvm.pageAlloc(6)), "EINVAL");
  assert.equal(refusal(() => uvm.pageAlloc(0, 99)), "EINVAL");
  uvm.pageClaim(3);
  assert.equal(refusal(() => uvm.pageClaim(3)), "EBUSY");
  assert.equal(refusal(() => uvm.setOwner(4, 1)), "EINVAL", "a free page has no owner");
  assert.equal(refusal(() => uvm.setOwner(3, 256)), "EINVAL");
  uvm.pageFree(3);
  assert.deepEqual(queueOrder(uvm).slice(1), order.filter((x) => x !== 3));
  uvm.check();
});

test("page: owner bytes mark allocated pages and clear on free", () => {
  const uvm = new Uvm();
  uvm.physload(0, 16, 0, 16, 0);
  const p = uvm.pageAlloc();
  assert.equal(uvm.owner(p), 0);
  uvm.setOwner(p, 7);
  assert.equal(uvm.owner(p), 7);
  assert.equal(uvm.pageFlags(p) & PG_FREE, 0);
  uvm.pageFree(p);
  assert.equal(uvm.owner(p), 0);
  assert.equal(uvm.pageFlags(p) & PG_FREE, PG_FREE);
  assert.equal(uvm.isManaged(p), true);
  assert.equal(uvm.isManaged(99), false);
});

test("page: loadRam splits a firmware map at 16 MiB and 4 GiB", () => {
  const uvm = new Uvm();
  const MiB = 2 ** 20;
  const GiB = 2 ** 30;
  const n = loadRam(uvm, [
    { base: 0, size: 640 * 1024 },
    { base: MiB, size: 3 * GiB - MiB },
    { base: 4 * GiB, size: 2 * GiB },
  ]);
  assert.equal(n, 4);
  const segs = [0, 1, 2, 3].map((i) => uvm.segment(i));
  assert.deepEqual(
    segs.map((s) => [s.start, s.end, s.availStart, s.availEnd, s.freeList]),
    [
      [0, 160, 0, 160, VM_FREELIST_FIRST16],
      [256, 4096, 256, 4096, VM_FREELIST_FIRST16],
      [4096, 786432, 4096, 786432, VM_FREELIST_FIRST4G],
      [1048576, 1572864, 1048576, 1572864, VM_FREELIST_DEFAULT],
    ],
  );
  assert.equal(uvm.freeCount(VM_FREELIST_FIRST16), 160 + 3840);
  uvm.check();
});

test("page: loadRam cuts a piece between its free ranges and leaves the rest allocated", () => {
  const uvm = new Uvm();
  const MiB = 2 ** 20;
  loadRam(uvm, [{ base: 0, size: 32 * MiB }], [
    { base: 0, size: 640 * 1024 },
    { base: 2 * MiB, size: 10 * MiB },
    { base: 20 * MiB, size: 4 * MiB },
  ]);
  const segs = Array.from({ length: uvm.segmentCount }, (_, i) => uvm.segment(i));
  assert.deepEqual(
    segs.map((s) => [s.start, s.end, s.availStart, s.availEnd, s.freeList]),
    [
      [0, 512, 0, 160, VM_FREELIST_FIRST16],
      [512, 4096, 512, 3072, VM_FREELIST_FIRST16],
      [4096, 8192, 5120, 6144, VM_FREELIST_FIRST4G],
    ],
  );
  assert.equal(uvm.free, 160 + 2560 + 1024);
  assert.equal(uvm.isFree(160), false);
  assert.equal(uvm.isManaged(160), true);
  uvm.check();
});

test("page: loadRam refuses bad or overlapping regions and loads nothing", () => {
  const uvm = new Uvm();
  uvm.physload(0, 16, 0, 16, 5);
  const cases: unknown[][] = [
    [[{ base: 0, size: 8192 }]],
    [[{ base: 1 << 20, size: 1 << 20 }, { base: (1 << 20) + 4096, size: 8192 }]],
    [[{ base: -4096, size: 8192 }]],
    [[{ base: 1 << 20, size: NaN }]],
    [[null]],
    ["not a list"],
  ];
  for (const args of cases) {
    assert.equal(
      refusal(() => loadRam(uvm, ...(args as [never]))),
      "EINVAL",
      JSON.stringify(args),
    );
    assert.equal(uvm.segmentCount, 1);
  }
  uvm.check();
});

test("page: a 64 GiB guest's page array is built in well under a second", () => {
  const GiB = 2 ** 30;
  const t = performance.now();
  const uvm = new Uvm();
  loadRam(uvm, [
    { base: 0, size: 640 * 1024 },
    { base: 2 ** 20, size: 3 * GiB - 2 ** 20 },
    { base: 4 * GiB, size: 61 * GiB },
  ]);
  const ms = performance.now() - t;
  assert.ok(ms < 1000, `took ${ms} ms`);
  assert.equal(uvm.free, 160 + (3 * GiB - 2 ** 20) / 4096 + 61 * GiB / 4096);
  assert.equal(uvm.pageAlloc(), 65 * GiB / 4096 - 1);
});

test("page: waitForFree resolves on the next free and rejects on abort", async () => {
  const uvm = new Uvm();
  uvm.physload(0, 4, 0, 4, 0);
  const p = uvm.pageAlloc();
  let woke = false;
  const waiting = uvm.waitForFree().then(() => (woke = true));
  await Promise.resolve();
  assert.equal(woke, false);
  uvm.pageFree(p);
  await waiting;
  assert.equal(woke, true);
  const ctl = new AbortController();
  const aborted = uvm.waitForFree(ctl.signal);
  ctl.abort();
  await assert.rejects(aborted, (e: unknown) => e instanceof KernelError && e.code === "EINTR");
  const already = uvm.waitForFree(ctl.signal);
  await assert.rejects(already, (e: unknown) => e instanceof KernelError && e.code === "EINTR");
});

test("page: random allocs, frees and claims keep every invariant", () => {
  const uvm = new Uvm();
  uvm.physload(300, 400, 310, 390, 3);
  uvm.physload(0, 100, 0, 100, 5);
  uvm.physload(1000, 1200, 1000, 1200, 0);
  const r = new Mulberry32(11);
  const held: number[] = [];
  for (let step = 0; step < 1500; step++) {
    const t = r.below(10);
    if (t < 5) {
      const fl = r.below(3) === 0 ? [0, 3, 5][r.below(3)] : -1;
      const p = uvm.pageAlloc(fl);
      if (p >= 0) held.push(p);
    } else if (t < 9 && held.length > 0) {
      const i = r.below(held.length);
      uvm.pageFree(held[i]!);
      held.splice(i, 1);
    } else {
      const pfn = [r.below(100), 300 + r.below(100), 1000 + r.below(200)][r.below(3)]!;
      if (uvm.isFree(pfn)) {
        uvm.pageClaim(pfn);
        held.push(pfn);
      }
    }
    uvm.check();
    assert.equal(uvm.free, uvm.freeCount(0) + uvm.freeCount(3) + uvm.freeCount(5));
  }
});

test("page: check() notices a broken queue and a wrong count", () => {
  const uvm = new Uvm();
  uvm.physload(0, 64, 0, 64, 0);
  uvm.check();
  const id = uvmInside(uvm).physmem.idOf(10);
  uvmInside(uvm).physmem.setNext(id, uvmInside(uvm).physmem.idOf(5));
  assert.equal(refusal(() => uvm.check()), "CORRUPT");
  const other = new Uvm();
  other.physload(0, 64, 0, 64, 0);
  uvmInside(other).physmem.markBusy(uvmInside(other).physmem.idOf(3));
  assert.equal(refusal(() => other.check()), "CORRUPT", "a queued page the bitmap says is busy");
  const third = new Uvm();
  third.physload(0, 64, 0, 64, 0);
  const p = third.pageAlloc();
  uvmInside(third).physmem.markFree(uvmInside(third).physmem.idOf(p));
  assert.equal(refusal(() => third.check()), "CORRUPT", "a free page on no queue");
});

test("page: check() takes untouched chunks on trust; the exhaustive check reads them", () => {
  const uvm = new Uvm();
  const n = 4 * CHUNK_PAGES;
  uvm.physload(1000, 1000 + n, 1000, 1000 + n, 0);
  uvm.pageFree(uvm.pageAlloc());
  uvm.check();
  uvm.check(true);
  // A page in the middle of the segment, in a chunk nothing has written.
  const id = uvmInside(uvm).physmem.idOf(1000 + 2 * CHUNK_PAGES + 5);
  assert.equal(uvmInside(uvm).physmem.chunkDirty[chunkOf(id)], 0);
  uvmInside(uvm).physmem.busyMap[id >>> 5] = 1 << (id & 31);
  uvm.check();
  assert.equal(refusal(() => uvm.check(true)), "CORRUPT");
  // Flags on a free page of a block nothing wrote, in a chunk something did.
  const other = new Uvm();
  other.physload(1000, 1000 + n, 1000, 1000 + n, 0);
  other.pageFree(other.pageAlloc());
  other.check(true);
  // The chunk of the segment's first page (its queue link was written at load).
  const c = chunkOf(uvmInside(other).physmem.idOf(1000));
  const dirty = uvmInside(other).physmem.chunkDirty[c]!;
  const k = 5;
  assert.equal(dirty & 1, 1);
  assert.equal((dirty >>> k) & 1, 0);
  const near = c * CHUNK_PAGES + k * BLOCK_PAGES + 5;
  uvmInside(other).physmem.flags[c]![near - c * CHUNK_PAGES] = PG_PGLIST;
  other.check();
  assert.equal(refusal(() => other.check(true)), "CORRUPT");
});

test("page: a 16 TiB guest loads, allocates and checks without setting up its pages", () => {
  const uvm = new Uvm();
  const t = performance.now();
  loadRam(uvm, [
    { base: 4096, size: 636 * 1024 },
    { base: 2 ** 20, size: 3 * 2 ** 30 - 2 ** 20 },
    { base: 2 ** 32, size: 2 ** 44 - 3 * 2 ** 30 },
  ]);
  const top = (2 ** 32 + 2 ** 44 - 3 * 2 ** 30) / 4096 - 1;
  assert.equal(uvm.pageAlloc(), top);
  assert.equal(uvm.pageAlloc(VM_FREELIST_FIRST16), 4095);
  uvm.check();
  uvm.pageFree(top);
  uvm.check();
  const ms = performance.now() - t;
  assert.ok(ms < 5000, `took ${ms} ms`);
  let touched = 0;
  const pm = uvmInside(uvm).physmem;
  for (let c = 0; c < pm.nchunks; c++) if (pm.chunkState[c]! & TOUCHED) touched++;
  assert.ok(touched <= 8, `${touched} of ${pm.nchunks} chunks set up`);
  assert.equal(uvm.free, 2 ** 32 - 97 - 1);
});

/**
 * The free queues as NetBSD keeps them, in plain arrays indexed by frame:
 * the order uvm_pagealloc hands pages out in, for comparing with Uvm's.
 */
class QueueModel {
  next = new Map<number, number>();
  prev = new Map<number, number>();
  constructor() {
    for (let h = 0; h < 6; h++) this.link(-1 - h, -1 - h);
  }
  link(a: number, b: number): void {
    this.next.set(a, b);
    this.prev.set(b, a);
  }
  head(fl: number): number {
    return this.next.get(-1 - fl)!;
  }
  push(fl: number, pfn: number): void {
    const first = this.head(fl);
    this.link(-1 - fl, pfn);
    this.link(pfn, first);
  }
  remove(pfn: number): void {
    this.link(this.prev.get(pfn)!, this.next.get(pfn)!);
    this.next.delete(pfn);
    this.prev.delete(pfn);
  }
  order(): number[] {
    const out: number[] = [];
    for (let h = 0; h < 6; h++) {
      for (let p = this.head(h); p >= 0; p = this.next.get(p)!) out.push(p);
    }
    return out;
  }
}

test("page: the free queues keep NetBSD's order across chunks: allocs, frees, claims, page lists", () => {
  const r = new Mulberry32(5);
  const uvm = new Uvm();
  const model = new QueueModel();
  const segs: [number, number, number, number, number][] = [
    [70000, 70000 + CHUNK_PAGES + 300, 70010, 70000 + CHUNK_PAGES + 290, 0],
    [10, 5000, 10, 5000, 5],
    [300000, 300000 + 9000, 300000, 300000 + 9000, 0],
  ];
  const flOf = (pfn: number) => segs.find((g) => pfn >= g[0] && pfn < g[1])![4];
  for (const g of segs) {
    uvm.physload(...g);
    for (let p = g[2]; p < g[3]; p++) model.push(g[4], p);
  }
  const held: number[] = [];
  const lists: PageList[] = [];
  for (let step = 0; step < 300; step++) {
    const t = r.below(10);
    if (t < 3) {
      for (let k = r.below(300); k >= 0; k--) {
        const p = uvm.pageAlloc(r.below(4) === 0 ? 5 : -1);
        if (p < 0) break;
        assert.equal(p, model.head(flOf(p)), `step ${step}: uvm_pagealloc's page`);
        model.remove(p);
        held.push(p);
      }
    } else if (t < 5 && held.length > 0) {
      for (let k = r.below(200); k >= 0 && held.length > 0; k--) {
        const p = held.splice(r.below(held.length), 1)[0]!;
        uvm.pageFree(p);
        model.push(flOf(p), p);
      }
    } else if (t < 6) {
      const g = segs[r.below(segs.length)]!;
      const p = g[0] + r.below(g[1] - g[0]);
      for (let q = p; q < Math.min(g[1], p + r.below(3000)); q++) {
        if (!uvm.isFree(q)) break;
        uvm.pageClaim(q);
        model.remove(q);
        held.push(q);
      }
    } else if (t < 8 || lists.length === 0) {
      const pages = 1 + r.below(r.below(3) === 0 ? 5000 : 100);
      const contig = r.below(2) === 0;
      const list = pglistTryAlloc(
        uvm,
        pages * 4096,
        0,
        2 ** 40,
        contig ? 4096 << r.below(6) : 0,
        0,
        contig ? 1 : pages,
      );
      if (list !== null) {
        for (const p of list.pfns()) model.remove(p);
        lists.push(list);
      }
    } else {
      const list = lists.splice(r.below(lists.length), 1)[0]!;
      const pfns = list.pfns();
      list.free();
      for (const p of pfns) model.push(flOf(p), p);
    }
    if (step % 20 === 0 || step === 299) {
      assert.deepEqual(queueOrder(uvm), model.order(), `step ${step}`);
    }
    uvm.check();
  }
  uvm.check(true);
});
