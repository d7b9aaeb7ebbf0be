import { test } from "node:test";
import assert from "node:assert/strict";
import { countedImports, errorCode, refusedUnchanged, segsOf as segs } from "./_test_util.ts";
import { describe } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import { VMEM_ALLOC, VMEM_FREE } from "./vmem.ts";
import {
  M_BESTFIT,
  M_FIRSTFIT,
  M_NOWAIT,
  M_WAITOK,
  VMEM_QCACHE_IDX_MAX,
  VmemFreeBSD,
  type VmemFreeBSDTracer,
} from "./vmem_freebsd.ts";
import { bucketSelect } from "./vmem_freebsd_qcache.ts";

const P = 4096;

/** Everything observable about an arena, its quantum caches included. */
function state(vm: VmemFreeBSD): unknown {
  return {
    segs: segs(vm),
    sizes: [vm.size(VMEM_ALLOC), vm.size(VMEM_FREE)],
    imported: vm.imported,
    caches: vm.qcacheStats(),
  };
}

/** Runs `fn`, which must throw a KernelError with `want`, and checks that nothing changed. */
function refused(want: string, fn: () => unknown, ...arenas: VmemFreeBSD[]): void {
  refusedUnchanged(want, fn, state, arenas);
}

/** The quantum cache of `size` of `vm`, as its stats say. */
function cache(vm: VmemFreeBSD, size: number) {
  const z = vm.qcacheStats().find((s) => s.size === size);
  assert.ok(z !== undefined, `no cache of ${size}`);
  return z;
}

/** A tracer that writes what it sees as lines. */
function lineTracer(lines: string[]): VmemFreeBSDTracer {
  return {
    alloc: (size, flags, addr) =>
      lines.push(`alloc ${size} ${flags & M_FIRSTFIT ? "firstfit" : "bestfit"} ${addr}`),
    free: (addr, size) => lines.push(`free ${addr} ${size}`),
  };
}

// ---- Shape ----

test("a zone per multiple of the quantum up to qcacheMax, named and sized as UMA's, at most 16", () => {
  const a = VmemFreeBSD.create("a", 4096, 65536, 16, { qcacheMax: 64 });
  assert.equal(a.qcacheMax, 64);
  assert.deepEqual(a.qcacheStats().map((z) => [z.name, z.size, z.bucketSize]), [
    ["a-16", 16, 253],
    ["a-32", 32, 253],
    ["a-48", 48, 253],
    ["a-64", 64, 253],
  ]);
  // qc_init caps the caches at VMEM_QCACHE_IDX_MAX quanta.
  const b = VmemFreeBSD.create("b", 0, 0, P, { qcacheMax: 64 * P });
  assert.equal(b.qcacheMax, VMEM_QCACHE_IDX_MAX * P);
  assert.equal(b.qcacheStats().length, 16);
  assert.deepEqual(VmemFreeBSD.create("c", 0, 0, 16).qcacheStats(), []);
  // UMA's bucket sizes: the largest bucket whose item-size limit admits the size.
  const sizes = [16, 64, 80, 128, 144, 256, 257, 512, 1024, 1536, 2048, 3072, 4096, 8192, 1 << 20];
  assert.deepEqual(sizes.map(bucketSelect), [
    253,
    253,
    125,
    125,
    61,
    61,
    29,
    29,
    13,
    9,
    5,
    3,
    1,
    1,
    1,
  ]);
});

test("create refuses a qcacheMax that is no integer multiple of the quantum in [0, 2^53 - 1]", () => {
  for (const v of [8, 24, -16, NaN, Infinity, 2 ** 53, 1.5, 16n, "64", true, {}]) {
    assert.throws(
      // deno-lint-ignore no-explicit-any
      () => VmemFreeBSD.create("a", 0, 4096, 16, { qcacheMax: v as any }),
      (e) => errorCode(e) === "EINVAL" && String(e).includes("qcacheMax"),
      describe(v),
    );
  }
});

// ---- Allocation and free ----

test("a cached size fills a bucket from the arena and hands it out from the top; a free comes back first", () => {
  const a = VmemFreeBSD.create("a", 4096, 65536, 16, { qcacheMax: 64 });
  // The fill imports 253 items of 16 bytes, lowest address first; the pop takes the last.
  const x = a.alloc(10, M_NOWAIT);
  assert.equal(x, 4096 + 252 * 16);
  assert.equal(a.size(VMEM_ALLOC), 253 * 16, "cached items stay allocated in the arena");
  assert.equal(a.alloc(16, M_NOWAIT | M_FIRSTFIT), 4096 + 251 * 16);
  a.free(x, 10);
  assert.equal(a.alloc(1, M_NOWAIT), x, "the freed item is the next one out");
  const z = cache(a, 16);
  assert.deepEqual(
    [z.allocs, z.frees, z.imports, z.releases, z.cached, z.allocBucket, z.fails],
    [3, 1, 253, 0, 251, 251, 0],
  );
  // Sizes of another zone fill that zone's own bucket, after the first.
  assert.equal(a.alloc(33, M_NOWAIT), 4096 + 253 * 16 + 252 * 48);
  // Sizes above qcacheMax and xalloc go to the segments.
  assert.equal(a.alloc(65, M_NOWAIT), 4096 + 253 * 16 + 253 * 48);
  assert.equal(a.xalloc(16, 0, 0, 0, 0, 0, M_NOWAIT), 4096 + 253 * 16 + 253 * 48 + 80);
  assert.equal(cache(a, 16).allocs, 3);
  a.check();
});

test("the alloc and free buckets trade places and full buckets queue on the zone's list", () => {
  const a = VmemFreeBSD.create("a", 1 << 20, 64 * P, P, { qcacheMax: 2 * P });
  assert.equal(cache(a, P).bucketSize, 1);
  // Each allocation empties the alloc bucket; the next fills a new one.
  const [A, B, C, D] = [0, 1, 2, 3].map(() => a.alloc(P, M_NOWAIT));
  assert.deepEqual([A, B, C, D], [0, 1, 2, 3].map((i) => (1 << 20) + i * P));
  // A goes into the alloc bucket, B into the free bucket; C and D each
  // push the full free bucket onto the list.
  for (const x of [A, B, C, D]) a.free(x!, P);
  let z = cache(a, P);
  assert.deepEqual([z.allocBucket, z.freeBucket, z.buckets, z.cached], [1, 1, 2, 4]);
  a.check();
  // Out: the alloc bucket, then the free bucket swapped in, then the list
  // head first, then a new fill.
  const out = [0, 1, 2, 3, 4].map(() => a.alloc(P, M_NOWAIT));
  assert.deepEqual(out, [A, D, C, B, (1 << 20) + 4 * P]);
  z = cache(a, P);
  assert.deepEqual([z.allocs, z.frees, z.imports, z.cached], [9, 4, 5, 0]);
  a.check();
});

test("drain gives back the list head first; purge the CPU's buckets too; the caches go on working", () => {
  const a = VmemFreeBSD.create("a", 1 << 20, 64 * P, P, { qcacheMax: 2 * P });
  const [A, B, C, D] = [0, 1, 2, 3].map(() => a.alloc(P, M_NOWAIT));
  for (const x of [A, B, C, D]) a.free(x!, P);
  const seen: string[] = [];
  a.tracer = lineTracer(seen);
  a.drain();
  assert.deepEqual(seen, [`free ${C} ${P}`, `free ${B} ${P}`]);
  assert.equal(a.size(VMEM_ALLOC), 2 * P, "the CPU's buckets keep theirs");
  assert.deepEqual(segs(a).slice(1, 4), [["alloc", A, P], ["free", B, 2 * P], ["alloc", D, P]]);
  a.purge();
  assert.deepEqual(seen.slice(2), [`free ${A} ${P}`, `free ${D} ${P}`]);
  assert.equal(a.size(VMEM_ALLOC), 0);
  const z = cache(a, P);
  assert.deepEqual([z.releases, z.cached, z.buckets, z.allocBucket, z.freeBucket], [4, 0, 0, 0, 0]);
  assert.equal(a.alloc(P, M_NOWAIT), 1 << 20);
  a.check();
});

test("free hands a cache any allocated segment of its size; the segment hash refuses the rest", () => {
  const a = VmemFreeBSD.create("a", 0, 65536, 16, { qcacheMax: 64 });
  // Address 0 is no cache's (FreeBSD's VMEM_ADDR_QCACHE_MIN): its free goes to the segments.
  assert.equal(a.xalloc(32, 0, 0, 0, 0, 0, M_NOWAIT), 0);
  a.free(0, 32);
  assert.equal(a.size(VMEM_ALLOC), 0);
  // A segment xalloc made, freed with free, joins the cache of its size.
  const y = a.xalloc(32, 64, 0, 0, 0, 0, M_NOWAIT | M_FIRSTFIT);
  assert.equal(y, 0);
  const w = a.xalloc(30, 0, 0, 0, 16, 0, M_NOWAIT);
  assert.equal(w, 32);
  a.free(w, 30);
  assert.equal(cache(a, 32).cached, 1);
  assert.equal(a.size(VMEM_ALLOC), 64);
  assert.equal(a.alloc(17, M_NOWAIT), w, "the cache hands the segment out again");
  const x = a.alloc(16, M_NOWAIT);
  a.free(w, 32);
  refused("BADFREE", () => a.free(w, 32), a); // already in the cache
  refused("BADFREE", () => a.xfree(w, 32), a); // xfree of a cached segment too
  refused("BADFREE", () => a.free(w + 16, 16), a); // not allocated
  refused("BADFREE", () => a.free(x, 32), a); // a segment of another size
  refused("BADFREE", () => a.free(x, 64), a);
  refused("BADFREE", () => a.free(60000, 16), a); // never handed out
  assert.throws(() => a.free(w, 32), (e) => String(e).includes("'a-32'"));
  // Arguments that are not integers are refused before any cache sees them.
  // deno-lint-ignore no-explicit-any
  const A = a as any;
  for (const v of [16n, "16", NaN, 1.5, -16, Infinity, null, undefined, true]) {
    refused("EINVAL", () => A.free(x, v), a);
    refused("EINVAL", () => A.free(v, 16), a);
  }
  a.free(x, 16);
  a.check();
});

test("alloc of a cached size refuses sizes and flags that are not valid, changing nothing", () => {
  const a = VmemFreeBSD.create("a", 4096, 65536, 16, { qcacheMax: 64 });
  a.free(a.alloc(16, M_NOWAIT), 16);
  // deno-lint-ignore no-explicit-any
  const A = a as any;
  for (const v of [16n, "16", NaN, 0, -16, 1.5, Infinity, null, undefined, true, {}]) {
    refused("EINVAL", () => A.alloc(v, M_NOWAIT), a);
    refused("EINVAL", () => A.alloc(v, M_WAITOK), a);
  }
  for (const f of [M_NOWAIT | M_WAITOK, M_NOWAIT | M_BESTFIT | M_FIRSTFIT, "1", 1n, 1.5, -1]) {
    refused("EINVAL", () => A.alloc(16, f), a);
  }
});

// ---- Room ----

/** An arena of 8 pages, every one an item of the page cache: alloc [A], free [H], list B..G. */
function fullOfItems(): { a: VmemFreeBSD; items: number[] } {
  const a = VmemFreeBSD.create("a", 1 << 20, 8 * P, P, { qcacheMax: 2 * P });
  const items = [0, 1, 2, 3, 4, 5, 6, 7].map(() => a.alloc(P, M_NOWAIT));
  for (const x of items) a.free(x, P);
  const z = cache(a, P);
  assert.deepEqual([z.allocBucket, z.freeBucket, z.buckets], [1, 1, 6]);
  assert.equal(a.size(VMEM_FREE), 0);
  return { a, items };
}

test("a request that finds no room drains the caches' lists, then calls reclaim, and searches again", () => {
  const { a, items } = fullOfItems();
  const order: string[] = [];
  a.setReclaim((arena) => order.push(`reclaim after ${cache(arena, P).buckets} buckets left`));
  // The drain frees pages 1 to 6, which coalesce; best-fit takes their start.
  assert.equal(a.alloc(3 * P, M_NOWAIT), items[1]);
  assert.deepEqual(order, ["reclaim after 0 buckets left"]);
  assert.equal(cache(a, P).releases, 6);
  // The CPU's buckets keep pages 0 and 7: 6 pages are not to be had.
  assert.equal(a.alloc(6 * P, M_NOWAIT), -1);
  a.purge(); // pages 0 and 7 come back: 7 joins the free pages 4 to 6
  assert.equal(a.alloc(4 * P, M_NOWAIT), items[4]);
  a.check();
});

test("a sleeping request that drains and still would wait is undone, caches included", () => {
  const { a } = fullOfItems();
  refused("WOULDBLOCK", () => a.alloc(7 * P, M_WAITOK), a);
  // One that drains and then fits keeps the drain.
  assert.equal(a.alloc(6 * P, M_WAITOK), (1 << 20) + P);
  assert.equal(cache(a, P).buckets, 0);
  a.check();
});

test("a sleeping request keeps a drain that gave a span back through a custom release function", () => {
  const s = VmemFreeBSD.create("s", 1 << 20, 3 * P, P);
  const counted = countedImports();
  const a = VmemFreeBSD.create("a", 0, 0, P, {
    source: s,
    qcacheMax: P,
    importFn: counted.importFn,
    releaseFn: counted.releaseFn,
  });
  const [A, B, C] = [0, 1, 2].map(() => a.alloc(P, M_NOWAIT));
  for (const x of [A, B, C]) a.free(x!, P); // alloc [A], list [B], free [C]
  assert.equal(counted.live, 3);
  // Two pages are to be had nowhere: the import fails, the drain gives B's
  // span back to s (its release cannot be undone), and the request would wait.
  assert.throws(() => a.alloc(2 * P, M_WAITOK), (e) => errorCode(e) === "WOULDBLOCK");
  assert.equal(counted.live, 2);
  assert.equal(cache(a, P).releases, 1);
  assert.equal(s.size(VMEM_ALLOC), 2 * P);
  a.check();
  s.check();
});

test("allocWait of a cached size waits inside the segment search, past the cache, as FreeBSD's loop does", async () => {
  const a = VmemFreeBSD.create("a", 4096, 4096, 16, { qcacheMax: 64 });
  const all = a.alloc(4096, M_NOWAIT);
  let got = -2;
  const p = a.allocWait(16, M_WAITOK).then((x) => (got = x));
  await Promise.resolve();
  assert.equal(got, -2);
  a.free(all, 4096);
  assert.equal(await p, 4096);
  const z = cache(a, 16);
  assert.deepEqual([z.allocs, z.imports], [0, 0], "the cache had nothing, and was not asked again");
  a.free(4096, 16); // into the cache: an allocated segment of its size
  assert.equal(cache(a, 16).cached, 1);
  a.check();
});

// ---- Sources and destroy ----

test("imports from a source with caches take its items; released spans go back to them", () => {
  const s = VmemFreeBSD.create("s", 1 << 20, 64 * P, P, { qcacheMax: 4 * P });
  const a = VmemFreeBSD.create("a", 0, 0, 16, { source: s });
  const x = a.alloc(16, M_NOWAIT);
  assert.equal(x, 1 << 20);
  assert.deepEqual([cache(s, P).allocs, cache(s, P).imports], [1, 1]);
  a.free(x, 16); // the span is wholly free: vmem_free in s puts it in s's cache
  assert.equal(cache(s, P).cached, 1);
  assert.equal(s.size(VMEM_ALLOC), P);
  assert.equal(a.alloc(16, M_NOWAIT), 1 << 20, "the same page, from s's cache");
  assert.equal(cache(s, P).imports, 1);
  a.check();
  s.check();
});

test("destroy gives back what the caches hold first, then refuses while anything is allocated", () => {
  const s = VmemFreeBSD.create("s", 1 << 20, 16 * P, P);
  const a = VmemFreeBSD.create("a", 0, 0, 16, { source: s, qcacheMax: 256 });
  const x = a.alloc(100, M_NOWAIT);
  const y = a.alloc(1000, M_NOWAIT);
  assert.equal(cache(a, 112).cached, 124);
  assert.throws(() => a.destroy(), (e) => errorCode(e) === "EBUSY");
  assert.equal(a.destroyed, false);
  assert.equal(a.size(VMEM_ALLOC), 112 + 1008);
  assert.equal(cache(a, 112).cached, 0);
  a.free(x, 100); // the caches still work
  assert.equal(cache(a, 112).cached, 1);
  a.check();
  a.free(y, 1000);
  assert.equal(a.destroy(), 0);
  assert.equal(s.size(VMEM_ALLOC), 0, "every span went back to s");
  s.check();
});

// ---- Invariants ----

test("check() finds a broken quantum cache", () => {
  const a = VmemFreeBSD.create("a", 4096, 65536, 16, { qcacheMax: 64 });
  a.free(a.alloc(16, M_NOWAIT), 16);
  a.check();
  // deno-lint-ignore no-explicit-any
  const A = a as any;
  const z = A.zones[0];
  const bt = z.allocBucket[0];
  const cases: [() => void, () => void][] = [
    [() => A.ty[bt] = 4, () => A.ty[bt] = 5], // a cached item marked allocated
    [() => z.allocBucket[1] = bt, () => z.allocBucket[1] = z.allocBucket[2]], // held twice
    [() => z.nFree++, () => z.nFree--], // counters that do not add up
    [() => z.allocCount = 300, () => z.allocCount = 253], // more items than slots
  ];
  const saved = z.allocBucket.slice();
  for (const [corrupt, mend] of cases) {
    corrupt();
    assert.throws(() => a.check(), (e) => errorCode(e) === "CORRUPT");
    mend();
    z.allocBucket.set(saved);
    a.check();
  }
});

test("random requests over caches and an import chain keep every invariant and the shadow's books", () => {
  const r = new Mulberry32(11);
  const s = VmemFreeBSD.create("s", 1 << 24, 1 << 22, P, { qcacheMax: 4 * P });
  const a = VmemFreeBSD.create("a", 0, 0, 256, {
    source: s,
    importQuantum: 16384,
    qcacheMax: 8 * 256,
  });
  const b = VmemFreeBSD.create("b", 1 << 30, 1 << 16, 16, { source: a, qcacheMax: 256 });
  a.setLimit(1 << 19);
  const arenas = [s, a, b];
  type Live = { vm: VmemFreeBSD; addr: number; size: number; x: boolean };
  const live: Live[] = [];
  const rounded = (l: Live) => l.vm.roundupSize(l.size);
  let drains = 0, cachedAllocs = 0;
  for (let step = 0; step < 4000; step++) {
    const vm = arenas[r.below(3)]!;
    const k = r.below(20);
    const flags = [0, M_BESTFIT, M_FIRSTFIT][r.below(3)]! |
      (r.below(8) === 0 ? M_WAITOK : M_NOWAIT);
    const q = vm.quantum;
    try {
      if (k < 8) {
        // Half of them cached sizes.
        const size = r.below(2) ? r.below(vm.qcacheMax) + 1 : r.below(24 * q) + 1;
        const addr = vm.alloc(size, flags);
        if (addr >= 0) live.push({ vm, addr, size, x: false });
        if (size <= vm.qcacheMax) cachedAllocs++;
      } else if (k < 10) {
        const size = r.below(8 * q) + 1;
        const align = r.below(2) ? 0 : q << r.below(6);
        const addr = vm.xalloc(size, align, 0, 0, 0, 0, flags);
        if (addr >= 0) live.push({ vm, addr, size, x: true });
      } else if (k === 10) {
        vm.drain();
        drains++;
      } else if (k === 11 && r.below(4) === 0) {
        vm.purge();
      } else if (live.length > 0) {
        const i = r.below(live.length);
        const l = live[i]!;
        if (l.x) l.vm.xfree(l.addr, l.size);
        else l.vm.free(l.addr, l.size);
        live.splice(i, 1);
      }
    } catch (e) {
      if (errorCode(e) !== "WOULDBLOCK") throw e;
    }
    for (const c of arenas) c.check();
    // The shadow: what clients hold never overlaps, lies in an allocated
    // segment of its own, and with the caches' items makes up the arena's
    // allocated bytes (imports of the arenas below counted as theirs).
    if (step % 10 === 0 || step > 3900) {
      for (const c of arenas) {
        const mine = live.filter((l) => l.vm === c).sort((p, q) => p.addr - q.addr);
        const allocated = new Map<number, number>();
        c.walk(VMEM_ALLOC, (start, size) => void allocated.set(start, size));
        for (let i = 0; i < mine.length; i++) {
          const l = mine[i]!;
          assert.equal(
            allocated.get(l.addr),
            rounded(l),
            `${c.name}: ${l.addr} is a segment of its own`,
          );
          if (i > 0) assert.ok(mine[i - 1]!.addr + rounded(mine[i - 1]!) <= l.addr, "overlap");
        }
        const byImporters = arenas.filter((d) => d.source === c).reduce(
          (n, d) => n + d.imported,
          0,
        );
        const inCaches = c.qcacheStats().reduce((n, z) => n + z.cached * z.size, 0);
        assert.equal(
          c.size(VMEM_ALLOC),
          mine.reduce((n, l) => n + rounded(l), 0) + inCaches + byImporters,
          `${c.name}: clients, caches and importers hold what the arena counts`,
        );
      }
    }
  }
  assert.ok(drains > 0 && cachedAllocs > 1000);
  assert.ok(arenas.some((c) => c.qcacheStats().some((z) => z.releases > 0)));
  // Freed, purged and destroyed, everything is back where it started.
  for (const l of live) l.x ? l.vm.xfree(l.addr, l.size) : l.vm.free(l.addr, l.size);
  for (const c of arenas) c.check();
  b.purge();
  assert.equal(b.size(VMEM_ALLOC), 0);
  assert.equal(b.destroy(), 0);
  a.purge();
  assert.equal(a.size(VMEM_ALLOC), 0);
  assert.equal(a.size(VMEM_ALLOC | VMEM_FREE), 0, "every import went back");
  assert.equal(a.destroy(), 0);
  assert.equal(s.destroy(), 0);
});

// ---- Tracing ----

test("what a tracer sees replays on arenas without caches to the same addresses and segments", () => {
  for (const seed of [1, 2, 3]) {
    const r = new Mulberry32(seed);
    const make = (qcacheMax: number) => {
      const s = VmemFreeBSD.create("s", 1 << 24, 1 << 20, P);
      const a = VmemFreeBSD.create("a", 0, 0, 256, { source: s, qcacheMax, importQuantum: 2 * P });
      a.setLimit(64 * P);
      return { s, a };
    };
    // Caches of 256 bytes to 4 KiB: buckets of 61 items down to 1.
    const run = make(4096), replay = make(0);
    const events: ([number, number, number] | [number, number])[] = [];
    run.a.tracer = {
      alloc: (size, flags, addr) => void events.push([size, flags, addr]),
      free: (addr, size) => void events.push([addr, size]),
    };
    const live: [number, number][] = [];
    let waits = 0;
    for (let step = 0; step < 3000; step++) {
      const k = r.below(10);
      try {
        if (k < 5 || live.length === 0) {
          const size = r.below(3) ? r.below(4096) + 1 : r.below(16384) + 1;
          const flags = (r.below(2) ? M_FIRSTFIT : M_BESTFIT) |
            (r.below(6) === 0 ? M_WAITOK : M_NOWAIT);
          const addr = run.a.alloc(size, flags);
          if (addr >= 0) live.push([addr, size]);
        } else {
          const [addr, size] = live.splice(r.below(live.length), 1)[0]!;
          run.a.free(addr, size);
        }
      } catch (e) {
        if (errorCode(e) !== "WOULDBLOCK") throw e;
        waits++;
      }
      // The replay catches up with what was traced.
      for (const e of events.splice(0)) {
        if (e.length === 3) {
          assert.equal(replay.a.alloc(e[0], e[1]), e[2], `seed ${seed} step ${step}`);
        } else replay.a.free(e[0], e[1]);
      }
      assert.deepEqual(segs(replay.a), segs(run.a), `seed ${seed} step ${step}`);
      assert.deepEqual(segs(replay.s), segs(run.s));
    }
    assert.ok(waits > 0);
    assert.ok(run.a.qcacheStats().some((z) => z.releases > 0), "drains happened");
    for (const [addr, size] of live) run.a.free(addr, size);
    run.a.purge();
    for (const e of events.splice(0)) {
      if (e.length === 3) replay.a.alloc(e[0], e[1]);
      else replay.a.free(e[0], e[1]);
    }
    assert.equal(replay.a.size(VMEM_ALLOC), 0, "the trace replays leak-free");
    assert.deepEqual(segs(replay.s), segs(run.s));
  }
});
