import { test } from "node:test";
import assert from "node:assert/strict";
import { createMachine } from "../machine/mod.ts";
import { Kernel } from "./kernel.ts";
import { NO_LEAKS } from "./_test_util.ts";
import { VM_NEXTFIT, VM_NOSLEEP, VM_SLEEP, Vmem } from "../mm/vmem.ts";
import type { Arena } from "../mm/arena.ts";

const MiB = 2 ** 20;

/** An arena of the illumos flavor (the kernel's default), as such. */
function illumos(a: Arena): Vmem {
  assert.ok(a instanceof Vmem, `${a.name} is an illumos arena`);
  return a;
}

/** Everything the heap arenas and the identifier arena of `k` show of themselves. */
function arenas(k: Kernel): unknown {
  const [heap, kmemVa, kmem] = [k.kmem.heap, k.kmem.kmemVa, k.kmem.kmem].map(illumos) as [
    Vmem,
    Vmem,
    Vmem,
  ];
  return {
    heap: [heap.summary(), heap.stats],
    kmemVa: [kmemVa.summary(), kmemVa.stats],
    kmem: [kmem.summary(), kmem.stats],
    pids: [k.pids.summary(), k.pids.stats],
  };
}

/** Takes every process ID of `k`. */
function takeAllPids(k: Kernel): number[] {
  const ids: number[] = [];
  for (let id; (id = k.pids.alloc(1, VM_NOSLEEP | VM_NEXTFIT)) !== 0;) ids.push(id);
  return ids;
}

test("two kernels in one process: neither changes the other", async () => {
  const a = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }));
  const b = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }));
  // Both run the same heap traffic; a's quantum caches end up with full
  // magazines in their depots, which any reap would empty.
  const sizes = [16, 48, 100, 256, 4096, 3 * 4096, 8 * 4096];
  for (const k of [a, b]) {
    const held: [number, number][] = [];
    for (let i = 0; i < 700; i++) {
      const size = sizes[i % sizes.length]!;
      held.push([k.kmem.alloc(size), size]);
    }
    for (const [va, size] of held) k.kmem.free(va, size);
  }
  assert.ok(illumos(a.kmem.kmem).summary().qcaches.some((c) => c.depotFull > 0));
  assert.ok(illumos(a.kmem.kmemVa).summary().qcaches.some((c) => c.depotFull > 0));
  const pidsA = takeAllPids(a);
  const pidsB = takeAllPids(b);
  // Sleeping requests in both kernels at once.
  let gotA = 0, gotB = 0;
  const waitA = a.pids.allocWait(1, VM_SLEEP | VM_NEXTFIT).then((id) => (gotA = id));
  const waitB = b.pids.allocWait(1, VM_SLEEP | VM_NEXTFIT).then((id) => (gotB = id));
  await Promise.resolve();
  const before = arenas(a);
  const pagesA = a.uvm.free;
  // A heap shortage in b: no page is free, so kmem cannot import, fails and
  // reaps b's quantum caches.
  const cachedB = illumos(b.kmem.kmem).summary().qcaches;
  while (b.pagedaemon.cache.insert() >= 0);
  assert.equal(b.kmem.alloc(1 << 20), 0);
  assert.ok(b.kmem.stats.pageShortages > 0);
  assert.notDeepEqual(illumos(b.kmem.kmem).summary().qcaches, cachedB, "b reaped its own caches");
  // b's sleeping request is woken by a free in b, a's by nothing of b's.
  b.pids.free(pidsB[7]!, 1);
  await waitB;
  assert.equal(gotB, pidsB[7]);
  assert.equal(gotA, 0);
  assert.deepEqual(arenas(a), before, "a's arenas, quantum caches included, as they were");
  assert.equal(a.uvm.free, pagesA);
  a.pids.free(pidsA[3]!, 1);
  await waitA;
  assert.equal(gotA, pidsA[3]);
  for (const [k, ids] of [[a, pidsA], [b, pidsB]] as const) {
    k.check();
    for (const id of ids) k.pids.free(id, 1);
  }
  for (const k of [a, b]) {
    assert.deepEqual(k.shutdown(), NO_LEAKS);
  }
});
