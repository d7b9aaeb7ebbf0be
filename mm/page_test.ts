import { test } from "node:test";
import assert from "node:assert/strict";
import { KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import { loadRam, Uvm, UVM_PGA_FALLBACK, UVM_PGA_PAGEDAEMON, UVM_PGA_USERESERVE } from "./page.ts";
import {
  PG_FREE,
  VM_FREELIST_DEFAULT,
  VM_FREELIST_FIRST16,
  VM_FREELIST_FIRST4G,
} from "./physseg.ts";

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KernelError, `not a KernelError: ${e}`);
    return e.code;
  }
  assert.fail("no error thrown");
}

/** The free pages in the order uvm_pagealloc would hand them out, without taking them. */
function queueOrder(uvm: Uvm): number[] {
  const pm = uvm.physmem;
  const out: number[] = [];
  for (let h = 0; h < 6; h++) {
    for (let id = uvm.linkNext(h); id !== h; id = uvm.linkNext(id)) out.push(pm.pfnOf(id));
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
  assert.equal(code(() => uvm.pageFree(p)), "BADFREE");
  assert.equal(code(() => uvm.pageFree(16)), "EINVAL");
  assert.equal(code(() => uvm.pageFree(-1)), "EINVAL");
  assert.equal(code(() => uvm.pageFree(1.5)), "EINVAL");
  assert.equal(code(() => uvm.pageAlloc(6)), "EINVAL");
  assert.equal(code(() => uvm.pageAlloc(0, 99)), "EINVAL");
  uvm.pageClaim(3);
  assert.equal(code(() => uvm.pageClaim(3)), "EBUSY");
  assert.equal(code(() => uvm.setOwner(4, 1)), "EINVAL", "a free page has no owner");
  assert.equal(code(() => uvm.setOwner(3, 256)), "EINVAL");
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
      code(() => loadRam(uvm, ...(args as [never]))),
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
  const id = uvm.physmem.idOf(10);
  uvm.setLinkNext(id, uvm.physmem.idOf(5));
  assert.equal(code(() => uvm.check()), "CORRUPT");
  const other = new Uvm();
  other.physload(0, 64, 0, 64, 0);
  other.physmem.flags[other.physmem.idOf(3)] = 0;
  assert.equal(code(() => other.check()), "CORRUPT");
});
