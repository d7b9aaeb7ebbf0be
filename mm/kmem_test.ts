import { test } from "node:test";
import assert from "node:assert/strict";
import { describe, KernelError } from "./errors.ts";
import { Kmem } from "./kmem.ts";
import type { Arena } from "./arena.ts";
import { Vmem } from "./vmem.ts";
import { loadRam, Uvm } from "./page.ts";
import { type PhysicalAccess, Pmap } from "./pmap.ts";

const MiB = 2 ** 20;
const KVA = 2 ** 47;

/** A heap over `ramBytes` of RAM above the first MiB, its pmap over a flat array. */
function heap(ramBytes: number): { kmem: Kmem; uvm: Uvm } {
  const mem = new Uint8Array(MiB + ramBytes);
  const phys: PhysicalAccess = {
    read: (pa, dst) => dst.set(mem.subarray(pa, pa + dst.length)),
    write: (pa, src) => mem.set(src, pa),
    fill: (pa, len, byte) => mem.fill(byte, pa, pa + len),
  };
  const uvm = new Uvm();
  loadRam(uvm, [{ base: MiB, size: ramBytes }]);
  return { kmem: new Kmem(uvm, new Pmap(phys, KVA, 4 * ramBytes)), uvm };
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
