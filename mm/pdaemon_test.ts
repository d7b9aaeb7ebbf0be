import { test } from "node:test";
import assert from "node:assert/strict";
import { PageCache, PageDaemon, type PageFrames } from "./pdaemon.ts";
import { KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";

/**
 * A pool of `n` pages with a free stack, enough to drive the daemon; page
 * `i` has the handle `base + i`. Counts the batches it was asked for.
 */
function pool(n: number, base = 0): PageFrames & { used: Set<number>; batches: number } {
  const free = Array.from({ length: n }, (_, i) => base + n - 1 - i);
  const used = new Set<number>();
  return {
    used,
    batches: 0,
    get freePages() {
      return free.length;
    },
    handleLimit: base + n,
    allocCachePages(out, at, max) {
      this.batches++;
      let k = 0;
      for (; k < max && free.length > 0; k++) {
        const h = free.pop()!;
        used.add(h);
        out[at + k] = h;
      }
      return k;
    },
    freeCachePages(handles, at, n) {
      for (let k = at; k < at + n; k++) {
        const h = handles[k]!;
        assert.ok(used.delete(h), `page ${h} freed twice`);
        free.push(h);
      }
    },
  };
}

test("pdaemon: the cache is a FIFO that grows past its initial ring", () => {
  const frames = pool(100);
  const cache = new PageCache(frames, 16);
  const got: number[] = [];
  for (let i = 0; i < 40; i++) got.push(cache.insert());
  assert.equal(cache.size, 40);
  const order: number[] = [];
  cache.forEach((pfn) => order.push(pfn));
  assert.deepEqual(order, got);
  assert.equal(cache.reclaimOne(), got[0]);
  assert.equal(cache.reclaimOne(), got[1]);
  assert.equal(cache.size, 38);
  assert.equal(frames.freePages, 62);
});

test("pdaemon: the ring keeps FIFO order while it wraps and grows, for handles past 2^31 too", () => {
  for (const base of [0, 2 ** 33]) {
    const frames = pool(5000, base);
    const cache = new PageCache(frames, 16);
    const model: number[] = [];
    const r = new Mulberry32(9);
    for (let step = 0; step < 3000; step++) {
      if (r.below(3) !== 0) {
        const n = r.below(2) === 0 ? cache.fill(1 + r.below(40)) : +(cache.insert() >= 0);
        for (const h of [...frames.used].slice(frames.used.size - n)) model.push(h);
      } else {
        const h = cache.reclaimOne();
        assert.equal(h, model.length > 0 ? model.shift() : -1);
      }
      assert.equal(cache.size, model.length);
    }
    const order: number[] = [];
    cache.forEach((h) => order.push(h));
    assert.deepEqual(order, model);
    assert.ok(model.every((h) => h >= base));
  }
});

test("pdaemon: fill takes every free page in few batches", () => {
  const frames = pool(10000);
  const cache = new PageCache(frames, 16);
  assert.equal(cache.fill(), 10000);
  assert.equal(cache.size, 10000);
  assert.equal(frames.freePages, 0);
  assert.ok(frames.batches <= 20, `${frames.batches} batches`);
  assert.equal(cache.fill(), 0);
  assert.equal(cache.insert(), -1);
});

test("pdaemon: insert fails when no page is free, reclaim when the cache is empty", () => {
  const frames = pool(3);
  const cache = new PageCache(frames);
  assert.ok(cache.insert() >= 0 && cache.insert() >= 0 && cache.insert() >= 0);
  assert.equal(cache.insert(), -1);
  assert.equal(cache.size, 3);
  const d = new PageDaemon(frames, cache, 1, 2);
  assert.equal(d.drain(), 3);
  assert.equal(cache.reclaimOne(), -1);
  assert.equal(d.reclaimable(), false);
});

test("pdaemon: a run reclaims up to freetarg and wakes sleepers", () => {
  const frames = pool(100);
  const cache = new PageCache(frames);
  while (cache.insert() >= 0);
  const d = new PageDaemon(frames, cache, 10, 25);
  let woken = 0;
  d.onFreed(() => woken++);
  assert.equal(d.low, true);
  assert.equal(d.reclaimable(), true);
  assert.equal(d.run(), 25);
  assert.equal(frames.freePages, 25);
  assert.equal(woken, 1);
  assert.equal(d.low, false);
  // Nothing to do above the target: no wakeup.
  assert.equal(d.run(), 0);
  assert.equal(woken, 1);
  assert.deepEqual(d.stats, { runs: 2, kicks: 0, reclaimed: 25, waits: 0, wakeups: 1 });
});

test("pdaemon: wait settles after the run its kick scheduled", async () => {
  const frames = pool(64);
  const cache = new PageCache(frames);
  while (cache.insert() >= 0);
  const d = new PageDaemon(frames, cache, 4, 8);
  const p = d.wait();
  assert.equal(frames.freePages, 0, "the daemon runs later, on the event loop");
  await p;
  assert.equal(frames.freePages, 8);
  assert.equal(d.stats.waits, 1);
  assert.equal(d.stats.runs, 1);
});

test("pdaemon: an aborted wait rejects with ECANCELED and is not settled by the run", async () => {
  const frames = pool(8);
  const cache = new PageCache(frames);
  const d = new PageDaemon(frames, cache, 1, 2);
  const ac = new AbortController();
  const p = d.wait(ac.signal);
  ac.abort(new Error("shutdown"));
  await assert.rejects(p, (e) => e instanceof KernelError && e.code === "ECANCELED");
  await assert.rejects(
    d.wait(ac.signal),
    (e) => e instanceof KernelError && e.code === "ECANCELED",
  );
  assert.throws(() => new PageDaemon(frames, cache, 5, 4), /freetarg/);
});

test("pdaemon: a kick with needfree raises the next run's target once", () => {
  const frames = pool(100);
  const cache = new PageCache(frames);
  while (cache.insert() >= 0);
  const d = new PageDaemon(frames, cache, 4, 8);
  d.kick(30);
  assert.equal(d.run(), 38);
  d.drain();
  while (cache.insert() >= 0);
  assert.equal(d.run(), 8, "the extra demand was for one run only");
});
