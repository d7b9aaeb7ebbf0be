import { test } from "node:test";
import assert from "node:assert/strict";
import { describe, KernelError } from "./errors.ts";
import { Kmem, KMEM_QCACHE_MAX, type KmemOptions, type VmemRecorder } from "./kmem.ts";
import type { Arena } from "./arena.ts";
import { Vmem, VMEM_ALLOC } from "./vmem.ts";
import { VmemFreeBSD } from "./vmem_freebsd.ts";
import { loadRam, Uvm } from "./page.ts";
import { type PhysicalAccess, Pmap } from "./pmap.ts";
import { Mulberry32 } from "./random.ts";
import { VmemFreeBSDReplayer } from "./replay_vmem_freebsd.ts";
import { replayLine } from "./replayer.ts";

const MiB = 2 ** 20;
const KVA = 2 ** 47;

/** A heap over `ramBytes` of RAM above the first MiB, its pmap over a flat array. */
function heap(ramBytes: number, options?: KmemOptions): { kmem: Kmem; uvm: Uvm } {
  const mem = new Uint8Array(MiB + ramBytes);
  const phys: PhysicalAccess = {
    read: (pa, dst) => dst.set(mem.subarray(pa, pa + dst.length)),
    write: (pa, src) => mem.set(src, pa),
    fill: (pa, len, byte) => mem.fill(byte, pa, pa + len),
  };
  const uvm = new Uvm();
  loadRam(uvm, [{ base: MiB, size: ramBytes }]);
  return { kmem: new Kmem(uvm, new Pmap(phys, KVA, 4 * ramBytes), options), uvm };
}

/** An arena of the illumos flavor (the heap's default), as such. */
function illumos(a: Arena): Vmem {
  assert.ok(a instanceof Vmem, `${a.name} is an illumos arena`);
  return a;
}

/** Everything the heap shows of itself. */
function look(k: Kmem): unknown {
  return [k.stats, ...[k.heap, k.kmemVa, k.kmem].map(illumos).map((a) => [a.summary(), a.stats])];
}

test("kmem_free refuses arguments of the wrong type with EINVAL, changing nothing", () => {
  const { kmem } = heap(4 * MiB);
  // A round in the magazine of the 64-byte cache, so that a size coerced to
  // 64 would be served or freed through it.
  kmem.free(kmem.alloc(64), 64);
  const va = kmem.alloc(64);
  const big = kmem.alloc(3 * 4096);
  const hostile = [64n, BigInt(va), "64", String(va), true, null, undefined, NaN, Symbol("k")];
  for (const v of hostile) {
    for (
      const [arg, call] of [
        ["size", () => kmem.free(va, v as never)],
        ["addr", () => kmem.free(v as never, 64)],
        ["size", () => kmem.free(big, v as never)],
        ["size", () => kmem.alloc(v as never)],
        ["size", () => kmem.zalloc(v as never)],
      ] as const
    ) {
      const before = look(kmem);
      assert.throws(
        call,
        (e: unknown) =>
          e instanceof KernelError && e.code === "EINVAL" && e.message.includes(arg) &&
          e.message.includes(describe(v)),
        `${arg} ${describe(v)}`,
      );
      assert.deepEqual(look(kmem), before, `${arg} ${describe(v)}`);
    }
  }
  kmem.free(va, 64);
  kmem.free(big, 3 * 4096);
  kmem.check();
});

test("each heap's arenas are a group of their own: a shortage in one reaps only its caches", () => {
  const a = heap(4 * MiB), b = heap(4 * MiB);
  for (const { kmem } of [a, b]) {
    const held: number[] = [];
    for (let i = 0; i < 200; i++) held.push(kmem.alloc(128));
    for (const va of held) kmem.free(va, 128);
  }
  assert.ok(illumos(a.kmem.kmem).summary().qcaches.some((c) => c.depotFull > 0));
  const before = look(a.kmem);
  // b runs out of pages: its kmem arena cannot import, fails and reaps.
  const held: number[] = [];
  for (let va; (va = b.kmem.alloc(64 * 1024)) !== 0;) held.push(va);
  assert.ok(b.kmem.stats.pageShortages > 0);
  assert.ok(
    illumos(b.kmem.kmem).summary().qcaches.every((c) => c.depotFull === 0),
    "b reaped its own",
  );
  assert.deepEqual(look(a.kmem), before);
  for (const va of held) b.kmem.free(va, 64 * 1024);
  a.kmem.check();
  b.kmem.check();
});

// ---- FreeBSD's flavor ----

/** A heap of FreeBSD's arenas, as {@link heap} builds illumos's. */
function freebsdHeap(ramBytes: number, recorder?: VmemRecorder): { kmem: Kmem; uvm: Uvm } {
  return heap(ramBytes, { flavor: "freebsd", recorder });
}

/** An arena of FreeBSD's flavor, as such. */
function freebsd(a: Arena): VmemFreeBSD {
  assert.ok(a instanceof VmemFreeBSD, `${a.name} is a FreeBSD arena`);
  return a;
}

test("FreeBSD heap: kmem's quantum caches serve up to 256 bytes; reap drains their lists", () => {
  const { kmem, uvm } = freebsdHeap(4 * MiB);
  const free0 = uvm.free;
  const k = freebsd(kmem.kmem);
  assert.equal(k.qcacheMax, KMEM_QCACHE_MAX);
  assert.equal(freebsd(kmem.kmemVa).qcacheMax, 0, "kmem_va imports as a replay does");
  const held: number[] = [];
  for (let i = 0; i < 1000; i++) held.push(kmem.alloc(64));
  for (const va of held) kmem.free(va, 64);
  const z = k.qcacheStats().find((s) => s.size === 64)!;
  assert.deepEqual([z.allocs, z.frees, z.cached, z.buckets], [1000, 1000, 1012, 2]);
  assert.equal(kmem.stats.inuse, 0);
  assert.equal(kmem.stats.arenaInuse, 1012 * 64, "cached items stay allocated in kmem");
  kmem.reap();
  assert.equal(k.qcacheStats().find((s) => s.size === 64)!.buckets, 0);
  kmem.check();
  // Shutdown empties the caches: every page comes back.
  assert.deepEqual(kmem.shutdown(), { kmem: 0, kmemVa: 0, heap: 0 });
  assert.equal(uvm.free, free0);
});

test("FreeBSD heap: kmem_free refuses what kmem did not hand out, cached sizes included", () => {
  const { kmem } = freebsdHeap(4 * MiB);
  kmem.free(kmem.alloc(64), 64);
  const va = kmem.alloc(64);
  const look = () => [kmem.stats, freebsd(kmem.kmem).qcacheStats(), kmem.kmem.size(VMEM_ALLOC)];
  const before = look();
  for (const v of [64n, "64", true, null, undefined, NaN]) {
    for (
      const [arg, call] of [["size", () => kmem.free(va, v as never)], [
        "addr",
        () => kmem.free(v as never, 64),
      ]] as const
    ) {
      assert.throws(
        call,
        (e: unknown) =>
          e instanceof KernelError && e.code === "EINVAL" && e.message.includes(arg) &&
          e.message.includes(describe(v)),
      );
    }
  }
  for (const [addr, size] of [[va + 16, 48], [va, 32], [va + 4096 * 64, 64]]) {
    assert.throws(
      () => kmem.free(addr!, size!),
      (e) => e instanceof KernelError && e.code === "BADFREE",
    );
  }
  assert.deepEqual(look(), before);
  kmem.free(va, 64);
  assert.throws(() => kmem.free(va, 64), (e) => e instanceof KernelError && e.code === "BADFREE");
  kmem.check();
});

test("FreeBSD heap: what kmem's segments saw replays on arenas without caches to the same results", () => {
  const lines: string[] = [];
  const results: string[] = [];
  const recorder: VmemRecorder = {
    create: (a, base, size) => {
      lines.push(JSON.stringify({
        op: "create",
        arena: a.name,
        base,
        size,
        quantum: a.quantum,
        qcache_max: 0,
        source: a.source?.name ?? null,
        flags: [],
      }));
      results.push('{"ok":true}');
    },
    alloc: (a, size, flags, addr) => {
      lines.push(JSON.stringify({ op: "alloc", arena: a.name, size, flags }));
      results.push(JSON.stringify({ addr: addr < 0 ? null : addr }));
    },
    free: (a, addr, size) => {
      lines.push(JSON.stringify({ op: "free", arena: a.name, addr, size }));
      results.push('{"ok":true}');
    },
  };
  const { kmem } = freebsdHeap(4 * MiB, recorder);
  const r = new Mulberry32(5);
  const live: [number, number][] = [];
  for (let i = 0; i < 3000; i++) {
    if (live.length === 0 || r.below(2) === 0) {
      const size = r.below(4) === 0 ? r.below(8192) + 1 : r.below(256) + 1;
      const va = kmem.alloc(size);
      if (va !== 0) live.push([va, size]);
    } else {
      const [va, size] = live.splice(r.below(live.length), 1)[0]!;
      kmem.free(va, size);
    }
  }
  for (const [va, size] of live) kmem.free(va, size);
  kmem.shutdown();
  assert.ok(lines.some((l) => l.includes('"size":16,')), "the caches' imports are in the trace");
  const replayer = new VmemFreeBSDReplayer();
  assert.deepEqual(lines.map((l) => replayLine(l, replayer)), results);
  const out = replayLine('{"op":"size","arena":"kmem","types":["alloc"]}', replayer);
  assert.equal(out, '{"size":0}', "the trace replays leak-free");
});
