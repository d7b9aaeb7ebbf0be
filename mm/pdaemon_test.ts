import { test } from "node:test";
import assert from "node:assert/strict";
import { PageCache, PageDaemon, type PageFrames } from "./pdaemon.ts";
import { KernelError } from "./errors.ts";

/** A pool of `n` frames with a free stack, enough to drive the daemon. */
function pool(n: number): PageFrames & { used: Set<number> } {
  const free = Array.from({ length: n }, (_, i) => n - 1 - i);
  const used = new Set<number>();
  return {
    used,
    get freePages() {
      return free.length;
    },
    allocCachePage() {
      const pfn = free.pop();
      if (pfn === undefined) return -1;
      used.add(pfn);
      return pfn;
    },
    freeCachePage(pfn) {
      assert.ok(used.delete(pfn), `frame ${pfn} freed twice`);
      free.push(pfn);
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
