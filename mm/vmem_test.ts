import { test } from "node:test";
import assert from "node:assert/strict";
import { describe, KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import {
  VM_ABORT,
  VM_BESTFIT,
  VM_ENDALLOC,
  VM_FIRSTFIT,
  VM_NEXTFIT,
  VM_NOSLEEP,
  VM_PANIC,
  VM_SLEEP,
  VMC_IDENTIFIER,
  VMC_NO_QCACHE,
  Vmem,
  VMEM_ALLOC,
  VMEM_FREE,
  VMEM_REENTRANT,
  VMEM_SPAN,
  VMEM_WALKER,
  VmemGroup,
} from "./vmem.ts";
import { QuantumCache } from "./vmem_qcache.ts";
import { type Seg, segsOf as segs } from "./_test_util.ts";

const ALL = VMEM_ALLOC | VMEM_FREE | VMEM_SPAN;

/** Everything observable about an arena: its walk and its counters. */
function state(vmp: Vmem): unknown {
  return { segs: segs(vmp), stats: vmp.stats };
}

/** Runs `fn`, which must throw a KernelError with `code`, and checks that nothing changed. */
function refused(code: string, fn: () => unknown, ...arenas: Vmem[]): void {
  const before = arenas.map(state);
  assert.throws(fn, (e: unknown) => e instanceof KernelError && e.code === code);
  assert.deepEqual(arenas.map(state), before);
  for (const a of arenas) a.check();
}

function code(e: unknown): string {
  return e instanceof KernelError ? e.code : String(e);
}

// ---- Policies ----

test("instant-fit takes the head of the first list whose members all fit, LIFO", () => {
  const a = Vmem.create("a", 100, 100, 1);
  for (const want of [100, 110, 120, 130]) assert.equal(a.alloc(10, VM_NOSLEEP), want);
  a.free(100, 10);
  a.free(120, 10);
  // 9 is not a power of two: only lists of 16 and up definitely fit it, so the
  // two holes of 10 are passed over for the tail [140, 200).
  assert.equal(a.alloc(9, VM_NOSLEEP), 140);
  // 8 is: list 8..15 fits, and its head is the hole freed last.
  assert.equal(a.alloc(8, VM_NOSLEEP), 120);
  assert.equal(a.alloc(8, VM_NOSLEEP), 100);
  a.check();
});

test("instant-fit carving a span of 2^38 leaves a remainder of 2^32 or more on its own list", () => {
  // A 2^38 span is alone on list 38; a page from it leaves 2^38 - 4096,
  // which belongs on list 37 (a 128 GiB kernel heap on a 64 GiB guest).
  for (const size of [2 ** 38, 2 ** 37, 2 ** 33]) {
    const a = Vmem.create("a", 2 ** 32, size, 4096);
    assert.equal(a.alloc(4096, VM_NOSLEEP), 2 ** 32);
    a.check();
    assert.equal(a.alloc(3 * 4096, VM_NOSLEEP), 2 ** 32 + 4096);
    a.check();
    a.free(2 ** 32, 4096);
    a.free(2 ** 32 + 4096, 3 * 4096);
    a.check();
    assert.deepEqual(segs(a), [["span", 2 ** 32, size], ["free", 2 ** 32, size]]);
  }
});

test("a carve that leaves the remainder on its list keeps the segment's place", () => {
  const a = Vmem.create("a", 1000, 100, 1);
  a.add(5000, 100); // a second free segment, on the same list (64..127), now its head
  // The head [5000, 5100) loses 10 and stays on the same list: no reordering.
  assert.equal(a.alloc(10, VM_NOSLEEP), 5000);
  assert.equal(a.alloc(10, VM_NOSLEEP), 5010);
  // [5020, 5100) is 80: a 20 carve leaves 60, a lower list, so the
  // remainder moves to list 32..63, where the next request finds it first.
  assert.equal(a.alloc(20, VM_NOSLEEP), 5020);
  assert.equal(a.alloc(20, VM_NOSLEEP), 5040);
  assert.equal(a.alloc(40, VM_NOSLEEP), 1000);
  a.check();
});

test("the one-piece instant-fit and free paths decide as the general path does", () => {
  // VM_ABORT sends an instant-fit request down the general path (allocGeneral,
  // allocInner, segAlloc) without changing its outcome here: with no source and
  // no quantum caches a failed search ends the same way. The dumps show segment
  // numbers and free-list order, so any difference in the carve shows.
  const r = new Mulberry32(9);
  const fast = Vmem.create("a", 1 << 20, 1 << 16, 16);
  const slow = Vmem.create("a", 1 << 20, 1 << 16, 16);
  const live: [number, number][] = [];
  let failures = 0;
  for (let step = 0; step < 3000; step++) {
    if (live.length === 0 || r.below(5) < 3) {
      const size = r.below(4) === 0 ? 16 * (r.below(64) + 1) : r.below(300) + 1;
      const a = fast.alloc(size, VM_NOSLEEP);
      assert.equal(slow.alloc(size, VM_NOSLEEP | VM_ABORT), a);
      if (a !== 0) live.push([a, size]);
      else failures++;
    } else {
      const [a, size] = live.splice(r.below(live.length), 1)[0]!;
      fast.free(a, size);
      slow.free(a, size);
    }
    if (step % 100 === 0) {
      assert.equal(fast.dump(), slow.dump());
      assert.deepEqual(fast.stats, slow.stats);
      fast.check();
    }
  }
  assert.ok(failures > 0 && live.length > 0);
  assert.equal(fast.dump(), slow.dump());
  assert.deepEqual(fast.stats, slow.stats);
});

test("the one-piece paths round sizes to every quantum as the general path does", () => {
  // instantFit and xfreeInner round a size of at most 2^32 up to the quantum
  // with integer masks; quanta of 2^32 and more, and larger sizes, take
  // other branches. Arenas under fault injection (an mtbf that never
  // strikes here) take the general path for both allocation and free.
  const r = new Mulberry32(31);
  for (const q of [1, 16, 4096, 2 ** 31, 2 ** 32, 2 ** 33]) {
    const base = 2 ** 40, size = q <= 4096 ? 2 ** 36 : 2 ** 45;
    const fast = Vmem.create("a", base, size, q);
    const slow = Vmem.create("a", base, size, q);
    slow.setMtbf(0xffffffff, 3);
    const live: [number, number][] = [];
    for (let step = 0; step < 600; step++) {
      if (live.length === 0 || r.below(5) < 3) {
        const kind = r.below(4);
        const sz = kind === 0
          ? r.below(64) + 1
          : kind === 1
          ? Math.max(q * (r.below(4) + 1) - r.below(2), 1)
          : kind === 2
          ? 2 ** 32 - r.below(3)
          : r.below(2 ** 32) + 1 + (r.below(4) === 0 ? 2 ** 32 : 0);
        const a = fast.alloc(sz, VM_NOSLEEP);
        assert.equal(slow.alloc(sz, VM_NOSLEEP), a, `quantum ${q}, size ${sz}`);
        if (a !== 0) live.push([a, sz]);
      } else {
        const [a, sz] = live.splice(r.below(live.length), 1)[0]!;
        fast.free(a, sz);
        slow.free(a, sz);
      }
      fast.check();
      if (step % 50 === 0) assert.equal(fast.dump(), slow.dump(), `quantum ${q}`);
    }
    assert.ok(live.length > 0, `quantum ${q}`);
    assert.equal(fast.dump(), slow.dump(), `quantum ${q}`);
    assert.deepEqual(fast.stats, slow.stats);
  }
});

test("the inline quantum-cache pop hands out what the cache's own path does", () => {
  // A sleeping request never takes the pop written out in alloc: it goes
  // through allocGeneral and allocInner to QuantumCache.alloc. In arenas
  // that never run out it decides as a nosleep one, so the two arenas must
  // stay identical, magazine by magazine.
  const r = new Mulberry32(11);
  // kmem's shape: sizes up to 64 bytes get 15-round magazines, up to 256 seven.
  const mk = () => Vmem.create("a", 1 << 20, 1 << 30, 16, { qcacheMax: 256 });
  const fast = mk(), slow = mk();
  const live: [number, number][] = [];
  const pops = () => fast.summary().qcaches.reduce((n, c) => n + c.alloc, 0);
  for (let step = 0; step < 4000; step++) {
    // Phases of growth and shrinking, so that magazines fill, empty and go
    // through the depot; now and then a size no cache serves.
    const grow = Math.floor(step / 250) % 2 === 0;
    if (live.length === 0 || r.below(10) < (grow ? 7 : 3)) {
      const size = r.below(20) === 0 ? 257 + r.below(4096) : r.below(256) + 1;
      const a = fast.alloc(size, VM_NOSLEEP);
      assert.equal(slow.alloc(size, VM_SLEEP), a, `step ${step}: size ${size}`);
      live.push([a, size]);
    } else {
      const [a, size] = live.splice(r.below(live.length), 1)[0]!;
      fast.free(a, size);
      slow.free(a, size);
      if (r.below(4) === 0 && size <= 256) {
        // Freed and asked for again at once: the round just pushed comes back.
        assert.equal(fast.alloc(size, VM_NOSLEEP), a);
        assert.equal(slow.alloc(size, VM_SLEEP), a);
        live.push([a, size]);
      }
    }
    fast.check();
    if (step % 50 === 0) {
      assert.equal(fast.dump(), slow.dump());
      assert.deepEqual(fast.summary(), slow.summary());
      assert.deepEqual(fast.stats, slow.stats);
      slow.check();
    }
  }
  assert.ok(pops() > 2000, `the caches served ${pops()} allocations`);
  assert.equal(fast.dump(), slow.dump());
  assert.deepEqual(fast.summary(), slow.summary());
});

test("the written-out free and constrained search decide as the seed-shaped ones do", () => {
  // Fault injection sends every call of an arena down the general,
  // seed-shaped paths: allocGeneral and allocInner for allocations,
  // xallocSearchPlain for constrained searches, xfreePlain for frees. With
  // an mtbf that never strikes in this run it decides as the written-out
  // paths do, so chains of arenas driven alike must stay identical:
  // addresses, coalescing, free-list order, segment numbers, spans given
  // back to the source. Arena c has a span past 2^38, so free segments and
  // remainders of 2^32 bytes and more come and go.
  const r = new Mulberry32(23);
  const C_BASE = 2 ** 44, C_SIZE = 2 ** 38 + 2 ** 33;
  const chain = (plain: boolean) => {
    const src = Vmem.create("src", 1 << 24, 1 << 22, 4096);
    const a = Vmem.create("a", 0, 0, 16, { source: src });
    const b = Vmem.create("b", 1 << 30, 1 << 20, 16);
    const c = Vmem.create("c", C_BASE, C_SIZE, 4096);
    if (plain) { for (const x of [src, a, b, c]) x.setMtbf(0xffffffff, 3); }
    return [src, a, b, c];
  };
  const fast = chain(false), slow = chain(true);
  const live: { i: number; addr: number; size: number; x: boolean }[] = [];
  const policies = [0, 0, 0, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT, VM_ENDALLOC];
  let failures = 0;
  for (let step = 0; step < 4000; step++) {
    const i = r.below(4);
    const q = fast[i]!.quantum;
    const op = r.below(10);
    if (live.length === 0 || op < 5) {
      const x = op === 4;
      const size = i === 3 && r.below(4) === 0
        ? q * (1 + r.below(2 ** 22))
        : r.below(3) === 0
        ? q * (r.below(64) + 1)
        : r.below(40 * q) + 1;
      const run = (v: Vmem) => {
        if (!x) {
          const policy = policies[r.below(policies.length)]!;
          const sz = policy === VM_ENDALLOC ? Math.ceil(size / q) * q : size;
          return [v.alloc(sz, VM_NOSLEEP | policy), sz] as const;
        }
        // Now and then, in arena c, an align past 2^30: the search then
        // takes its floating-point fit test rather than the integer one.
        const align = i === 3 && r.below(4) === 0 ? 2 ** (29 + r.below(5)) : q * 2 ** r.below(6);
        const phase = r.below(3) === 0 ? q * r.below(align / q) : 0;
        let nocross = 0, minaddr = 0, maxaddr = 0;
        if (r.below(3) === 0) {
          const need = Math.ceil((phase + size) / align) * align;
          nocross = 2 ** (Math.ceil(Math.log2(need)) + r.below(3));
        }
        // Limits inside the span of an arena that has a fixed one.
        const span = i === 0
          ? [1 << 24, 1 << 22]
          : i === 2
          ? [1 << 30, 1 << 20]
          : i === 3
          ? [C_BASE, C_SIZE]
          : null;
        if (span !== null && r.below(3) === 0) minaddr = span[0]! + q * r.below(span[1]! / q);
        if (span !== null && r.below(3) === 0) {
          maxaddr = span[0]! + q * (1 + r.below(span[1]! / q));
          if (minaddr > maxaddr) minaddr = 0;
        }
        const policy = [0, 0, VM_BESTFIT, VM_FIRSTFIT][r.below(4)]! |
          (nocross === 0 && maxaddr === 0 && r.below(5) === 0 ? VM_ENDALLOC : 0);
        const flags = VM_NOSLEEP | policy;
        return [v.xalloc(size, align, phase, nocross, minaddr, maxaddr, flags), size] as const;
      };
      const seed = r.next();
      const draw = (v: Vmem) => {
        const saved = r.next;
        const rr = new Mulberry32(seed);
        r.next = () => rr.next();
        try {
          return run(v);
        } finally {
          r.next = saved;
        }
      };
      const [addr, sz] = draw(fast[i]!);
      assert.deepEqual(draw(slow[i]!), [addr, sz], `step ${step}`);
      if (addr === 0) failures++;
      else live.push({ i, addr, size: sz, x });
    } else {
      const { i: j, addr, size, x } = live.splice(r.below(live.length), 1)[0]!;
      for (const v of [fast[j]!, slow[j]!]) x ? v.xfree(addr, size) : v.free(addr, size);
    }
    for (const v of fast) v.check();
    if (step % 50 === 0) {
      for (let k = 0; k < fast.length; k++) {
        assert.equal(fast[k]!.dump(), slow[k]!.dump(), `step ${step}`);
        assert.deepEqual(fast[k]!.stats, slow[k]!.stats);
        slow[k]!.check();
      }
    }
  }
  assert.ok(failures > 0 && live.length > 0, `${failures} failures, ${live.length} live`);
  assert.ok(fast[1]!.stats.memImport > 0 && fast[0]!.stats.free > 100, "spans came and went");
  for (let k = 0; k < fast.length; k++) assert.equal(fast[k]!.dump(), slow[k]!.dump());
  assert.ok(fast[3]!.summary().freeSegments > 1, "arena c was carved");
});

test("best-fit picks the smallest fitting segment of the first list that has one", () => {
  const a = Vmem.create("a", 100, 200, 1);
  const [b1, , b3, , b5] = [12, 1, 10, 1, 11, 1].map((s) => a.alloc(s, VM_NOSLEEP)) as number[] & [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  a.free(b1, 12); // hole 12
  a.free(b3, 10); // hole 10
  a.free(b5, 11); // hole 11
  assert.equal(a.alloc(9, VM_NOSLEEP | VM_BESTFIT), b3);
  assert.equal(
    a.alloc(9, VM_NOSLEEP | VM_FIRSTFIT),
    b5,
    "first-fit: list order (LIFO), not address",
  );
  a.check();
});

test("next-fit cycles through the arena with the rotor", () => {
  const a = Vmem.create("ids", 1, 10, 1, { flags: VMC_IDENTIFIER });
  const got: number[] = [];
  for (let i = 0; i < 12; i++) {
    const id = a.alloc(1, VM_NOSLEEP | VM_NEXTFIT);
    got.push(id);
    if (id !== 0) a.free(id, 1);
  }
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2]);
  // The rotor keeps the hole behind it from coalescing: two free segments.
  assert.deepEqual(segs(a, VMEM_FREE), [["free", 1, 2], ["free", 3, 8]]);
  a.check();
});

test("end allocation: instant-fit at the end, xalloc moved up by whole alignments", () => {
  const a = Vmem.create("a", 4096, 4096 * 16, 4096);
  assert.equal(a.alloc(4096, VM_NOSLEEP | VM_ENDALLOC), 4096 * 16);
  assert.equal(a.xalloc(4096, 8192, 0, 0, 0, 0, VM_NOSLEEP | VM_ENDALLOC), 4096 * 14);
  assert.equal(a.alloc(4096, VM_NOSLEEP | VM_NEXTFIT | VM_ENDALLOC), 4096, "next-fit ignores it");
  a.check();
});

test("xalloc honours align, phase, nocross, minaddr and maxaddr", () => {
  const a = Vmem.create("a", 100, 1000, 1);
  assert.equal(a.xalloc(10, 32, 8, 0, 0, 0, VM_NOSLEEP), 104);
  // From 120 a 16-unit block would cross 128: it moves to the boundary.
  assert.equal(a.xalloc(6, 0, 0, 0, 0, 0, VM_NOSLEEP), 114);
  assert.equal(a.xalloc(16, 0, 0, 64, 0, 0, VM_NOSLEEP), 128);
  assert.equal(a.xalloc(10, 0, 0, 0, 500, 0, VM_NOSLEEP), 500);
  assert.equal(a.xalloc(10, 0, 0, 0, 0, 125, VM_NOSLEEP), 0, "nothing free below 125");
  assert.equal(a.xalloc(4, 0, 0, 0, 0, 124, VM_NOSLEEP), 100);
  assert.equal(a.xalloc(10, 0, 0, 0, 600, 605, VM_NOSLEEP), 0);
  for (const [addr, size] of [[104, 10], [114, 6], [128, 16], [500, 10], [100, 4]] as const) {
    a.xfree(addr, size);
  }
  assert.deepEqual(segs(a), [["span", 100, 1000], ["free", 100, 1000]]);
  a.check();
});

test("an allocated segment keeps the exact size; the slack returns on free", () => {
  const a = Vmem.create("a", 4096, 4 * 4096, 4096);
  const x = a.alloc(5000, VM_NOSLEEP);
  assert.equal(a.size(VMEM_ALLOC), 5000);
  assert.equal(a.size(VMEM_FREE), 4 * 4096 - 5000);
  assert.deepEqual(segs(a), [["span", 4096, 16384], ["alloc", 4096, 5000], ["free", 12288, 8192]]);
  refused("BADFREE", () => a.free(x, 8192), a);
  a.free(x, 5000);
  assert.deepEqual(segs(a), [["span", 4096, 16384], ["free", 4096, 16384]]);
});

test("spans stay in the order they were added; contains follows them", () => {
  const a = Vmem.create("a", 3000, 100, 1);
  a.add(1000, 100);
  a.add(2000, 100);
  assert.deepEqual(segs(a, VMEM_SPAN), [["span", 3000, 100], ["span", 1000, 100], [
    "span",
    2000,
    100,
  ]]);
  assert.equal(a.contains(1000, 100), true);
  assert.equal(a.contains(1050, 51), false, "crosses the end of a span");
  assert.equal(a.contains(1100, 0), true, "size 0: start <= addr <= end");
  assert.equal(a.contains(1101, 0), false);
  assert.equal(a.contains(1099, 2), false, "spans never join");
  assert.equal(a.stats.contains, 5);
});

// ---- Importing ----

test("an importing arena sizes imports as the seed, returns whole spans, leaks on destroy", () => {
  const src = Vmem.create("src", 1 << 20, 1 << 20, 16);
  const a = Vmem.create("a", 0, 0, 1, { source: src });
  // align 64 > source quantum 16 and phase 8 is not a multiple of 16: the
  // import reserves align - quantum = 63 for the phase.
  const x = a.xalloc(100, 64, 8, 0, 0, 0, VM_NOSLEEP);
  assert.deepEqual(segs(src, VMEM_ALLOC), [["alloc", 1 << 20, 176]]); // roundup(100 + 63, 16)
  assert.equal(x, (1 << 20) + 8, "placed at P2PHASEUP(span start) without a search");
  assert.equal(a.stats.memImport, 176);
  // Phase a multiple of the source quantum: align - 16 is reserved.
  const y = a.xalloc(100, 64, 16, 0, 0, 0, VM_NOSLEEP);
  assert.deepEqual(segs(src, VMEM_ALLOC).slice(1), [["alloc", (1 << 20) + 176, 160]]);
  assert.equal(y, (1 << 20) + 208);
  a.xfree(x, 100);
  assert.deepEqual(
    segs(src, VMEM_ALLOC),
    [["alloc", (1 << 20) + 176, 160]],
    "whole span went back",
  );
  const z = a.alloc(10, VM_NOSLEEP);
  assert.equal(a.destroy(), 110);
  assert.equal(src.size(VMEM_ALLOC), 160, "imports stay allocated in the source");
  // [208, 308) left [176, 208) (list 32..63) and [308, 336) (list 16..31): 10 takes the latter.
  assert.equal(z, (1 << 20) + 308, "served from the span already imported");
  src.check();
});

test("no_qcache arenas import at least 64 even with qcache_max 0", () => {
  const src = Vmem.create("src", 4096, 1 << 20, 1);
  const a = Vmem.create("a", 0, 0, 1, { source: src, flags: VMC_NO_QCACHE });
  assert.equal(a.minImport, 64);
  a.alloc(10, VM_NOSLEEP);
  assert.deepEqual(segs(src, VMEM_ALLOC), [["alloc", 4096, 64]]);
  const b = Vmem.create("b", 0, 0, 512, {
    source: Vmem.create("s2", 1 << 30, 1 << 30, 4096),
    qcacheMax: 5120,
    flags: VMC_NO_QCACHE,
  });
  assert.equal(b.minImport, 16384, "max(2^highbit(3 * 10 * 512), 64)");
  assert.equal(b.qcacheMax, 0);
});

test("min_import keeps the seed's int shift: the count wraps at 32 as on x86", () => {
  // VMEM_QCACHE_SLABSIZE is MAX(1 << highbit(3 * max), 64) with an int 1:
  // the native seed turns 1 << 32 into 1 and 1 << 31 into a negative int.
  const s = Vmem.create("s", 2 ** 50, 2 ** 40, 2 ** 26);
  const mk = (q: number, qmax: number) =>
    Vmem.create("x", 0, 0, q, { source: s, qcacheMax: qmax, flags: VMC_NO_QCACHE }).minImport;
  assert.equal(mk(2 ** 26, 2 ** 30), 64, "3 * 2^30: highbit 32, 1 << 32 is 1");
  assert.equal(mk(2 ** 25, 2 ** 29), 64, "3 * 2^29: highbit 31, 1 << 31 is negative");
  assert.equal(mk(2 ** 24, 2 ** 28), 2 ** 30, "3 * 2^28: highbit 30");
  assert.equal(mk(2 ** 20, 2 ** 24), 2 ** 26);
});

test("an import made unnecessary while importing is given back", () => {
  // The source's larger quantum makes imports bigger than needed, so the
  // arena gives an import back when it finds room on return.
  const src = Vmem.create("src", 1 << 20, 1 << 20, 8192);
  let held = 0;
  let freeWhileImporting = false;
  let calls = 0;
  const a: Vmem = Vmem.create("a", 1 << 30, 4096, 16, {
    source: src,
    importFn: (s, size, flags) => {
      calls++;
      const v = s.alloc(size, flags);
      if (freeWhileImporting) a.free(held, 4096); // as another thread would, lock dropped
      return v;
    },
  });
  held = a.alloc(4096, VM_NOSLEEP);
  assert.equal(held, 1 << 30);
  freeWhileImporting = true;
  const x = a.alloc(4096, VM_NOSLEEP);
  assert.equal(calls, 1);
  assert.equal(x, held, "served from the room the free made");
  assert.equal(src.size(VMEM_ALLOC), 0, "the import went back to the source");
  assert.deepEqual(segs(a), [["span", 1 << 30, 4096], ["alloc", 1 << 30, 4096]]);
  a.check();
  src.check();
});

test("custom import and release functions replace the source's alloc and free", () => {
  const src = Vmem.create("src", 1 << 20, 1 << 20, 4096);
  const log: string[] = [];
  const a = Vmem.create("a", 0, 0, 8, {
    source: src,
    importFn: (s, size, flags) => {
      log.push(`import ${size}`);
      return s.alloc(size, flags);
    },
    releaseFn: (s, addr, size) => {
      log.push(`release ${size}`);
      s.free(addr, size);
    },
  });
  const x = a.alloc(100, VM_NOSLEEP);
  a.free(x, 100);
  assert.deepEqual(log, ["import 4096", "release 4096"]);
  const b = Vmem.create("b", 0, 0, 8, { source: src, releaseFn: null });
  const y = b.alloc(100, VM_NOSLEEP);
  b.free(y, 100);
  assert.deepEqual(segs(b, VMEM_SPAN), [["span", y, 4096]], "no release function: the span stays");
});

test("callbacks that use arenas mid-request do not change what the request returns", () => {
  // Import and release functions run in the middle of an allocation or a
  // free, and may allocate and free elsewhere, or free into the importing
  // arena itself (which can make the import unnecessary). Whatever they do,
  // every request must hand back its own address: one that is allocated in
  // the arena with the size asked for.
  const other = Vmem.create("other", 2 ** 45, 2 ** 30, 4096);
  // The source's larger quantum makes imports larger than needed, so that a
  // free during an import can make it unnecessary.
  const src = Vmem.create("src", 2 ** 40, 2 ** 30, 65536);
  const held: [number, number, boolean][] = [];
  const r = new Mulberry32(5);
  let giveBack = false;
  const stir = () => {
    const t = other.xalloc(12288, 65536, 4096, 0, 0, 0, VM_NOSLEEP);
    other.free(other.alloc(4096, VM_NOSLEEP), 4096);
    other.xfree(t, 12288);
  };
  const release = () => {
    if (!giveBack || held.length === 0) return;
    const [addr, size, constrained] = held.splice(r.next() % held.length, 1)[0]!;
    if (constrained) a.xfree(addr, size);
    else a.free(addr, size);
  };
  const a: Vmem = Vmem.create("a", 0, 0, 4096, {
    source: src,
    importFn: (s, size, flags) => {
      const v = s.alloc(size * 2, flags);
      stir();
      release();
      stir();
      return v;
    },
    releaseFn: (s, addr, size) => {
      s.free(addr, size * 2);
      stir();
    },
  });
  const allocated = (addr: number, size: number) =>
    segs(a, VMEM_ALLOC).some(([, s, n]) => s === addr && n === size);
  let imports = 0;
  for (let step = 0; step < 600; step++) {
    giveBack = r.next() % 2 === 0;
    if (held.length > 0 && r.next() % 5 < 2) {
      const [addr, size, constrained] = held.splice(r.next() % held.length, 1)[0]!;
      if (constrained) a.xfree(addr, size);
      else a.free(addr, size);
      assert.ok(!allocated(addr, size), `step ${step}: freed`);
    } else {
      const size = (r.next() % 24 + 1) * 4096;
      const policy = [0, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT][r.next() % 4]!;
      const constrained = r.next() % 3 === 0;
      const before = src.stats.alloc;
      const addr = constrained
        ? a.xalloc(size, 8192, 4096, 0, 0, 0, VM_NOSLEEP | policy)
        : a.alloc(size, VM_NOSLEEP | policy);
      imports += src.stats.alloc - before;
      assert.ok(allocated(addr, size), `step ${step}: ${addr} +${size} is allocated in a`);
      held.push([addr, size, constrained]);
    }
    a.check();
    src.check();
  }
  assert.ok(imports > 20, `imports happened (${imports})`);
  assert.equal(other.size(VMEM_ALLOC), 0);
});

test("a failed import: VM_ABORT fails, nosleep fails, sleep would wait", () => {
  const src = Vmem.create("src", 1 << 20, 4096, 4096);
  let pages = 0;
  const a = Vmem.create("a", 0, 0, 4096, {
    source: src,
    importFn: (s, size, flags) => (pages > 0 ? (pages--, s.alloc(size, flags)) : 0),
  });
  assert.equal(a.alloc(4096, VM_NOSLEEP), 0);
  assert.equal(a.alloc(4096, VM_SLEEP | VM_ABORT), 0);
  refused("WOULDBLOCK", () => a.alloc(4096, VM_SLEEP), a, src);
  pages = 1;
  assert.equal(a.alloc(4096, VM_SLEEP), 1 << 20);
  assert.equal(a.stats.fail, 2);
});

// ---- Refusals ----

test("create refuses bad quanta, spans, sources and flags", () => {
  const ids = Vmem.create("ids", 1, 100, 1, { flags: VMC_IDENTIFIER });
  const mem = Vmem.create("mem", 4096, 4096, 4096);
  const bad: [string, () => unknown][] = [
    ["quantum 3", () => Vmem.create("x", 0, 0, 3)],
    ["base 0 with a size", () => Vmem.create("x", 0, 4096, 4096)],
    ["base without size", () => Vmem.create("x", 4096, 0, 4096)],
    ["misaligned", () => Vmem.create("x", 4097, 4096, 4096)],
    ["past 2^53", () => Vmem.create("x", 2 ** 53 - 4096, 8192, 4096)],
    [
      "identifier from memory",
      () => Vmem.create("x", 0, 0, 1, { source: mem, flags: VMC_IDENTIFIER }),
    ],
    ["memory from identifiers", () => Vmem.create("x", 0, 0, 1, { source: ids })],
    ["quantum above the source's", () => Vmem.create("x", 0, 0, 8192, { source: mem })],
    ["import without source", () => Vmem.create("x", 0, 0, 1, { importFn: () => 0 })],
    ["unknown flags", () => Vmem.create("x", 0, 0, 1, { flags: 1 })],
    ["negative qcache", () => Vmem.create("x", 0, 0, 1, { qcacheMax: -1 })],
  ];
  for (const [what, fn] of bad) {
    assert.throws(fn, (e: unknown) => code(e) === "EINVAL", what);
  }
  mem.destroy();
  assert.throws(
    () => Vmem.create("x", 0, 0, 1, { source: mem }),
    (e: unknown) => code(e) === "EINVAL",
  );
});

test("add refuses 0, misaligned, overflowing and overlapping spans, changing nothing", () => {
  const a = Vmem.create("a", 4096, 8192, 4096);
  a.add(65536, 4096);
  refused("EINVAL", () => a.add(0, 4096), a);
  refused("EINVAL", () => a.add(8192 * 4, 0), a);
  refused("EINVAL", () => a.add(4097 * 8, 4096), a);
  refused("EINVAL", () => a.add(2 ** 53 - 4096, 8192), a);
  refused("EINVAL", () => a.add(8192, 4096), a);
  refused("EINVAL", () => a.add(61440, 8192), a);
  refused("EINVAL", () => a.add(1.5, 4096), a);
});

test("alloc and xalloc refuse what the seed panics on, changing nothing", () => {
  const a = Vmem.create("a", 4096, 1 << 20, 4096);
  a.alloc(4096, VM_NOSLEEP | VM_NEXTFIT);
  const cases: [string, () => unknown][] = [
    ["size 0", () => a.alloc(0, VM_NOSLEEP)],
    ["size not integer", () => a.alloc(1.5, VM_NOSLEEP)],
    ["size too big", () => a.alloc(2 ** 53, VM_NOSLEEP)],
    ["unknown flag", () => a.alloc(4096, VM_NOSLEEP | 0x10000)],
    [
      "instant-fit end allocation of a partial quantum",
      () => a.alloc(100, VM_NOSLEEP | VM_ENDALLOC),
    ],
    ["xalloc size 0", () => a.xalloc(0, 0, 0, 0, 0, 0, VM_NOSLEEP)],
    ["align not quantum-aligned", () => a.xalloc(4096, 2048, 0, 0, 0, 0, VM_NOSLEEP)],
    ["phase not quantum-aligned", () => a.xalloc(4096, 8192, 100, 0, 0, 0, VM_NOSLEEP)],
    ["nocross not quantum-aligned", () => a.xalloc(4096, 0, 0, 100, 0, 0, VM_NOSLEEP)],
    ["align not a power of two", () => a.xalloc(4096, 3 * 4096, 0, 0, 0, 0, VM_NOSLEEP)],
    ["nocross not a power of two", () => a.xalloc(4096, 0, 0, 3 * 4096, 0, 0, VM_NOSLEEP)],
    ["phase >= align", () => a.xalloc(4096, 8192, 8192, 0, 0, 0, VM_NOSLEEP)],
    ["align > nocross", () => a.xalloc(4096, 16384, 0, 8192, 0, 0, VM_NOSLEEP)],
    ["overconstrained", () => a.xalloc(8192, 8192, 4096, 8192, 0, 0, VM_NOSLEEP)],
    ["minaddr > maxaddr", () => a.xalloc(4096, 0, 0, 0, 65536, 8192, VM_NOSLEEP)],
    [
      "end allocation with nocross",
      () => a.xalloc(4096, 0, 0, 65536, 0, 0, VM_NOSLEEP | VM_ENDALLOC),
    ],
    [
      "end allocation with maxaddr",
      () => a.xalloc(4096, 0, 0, 0, 0, 65536, VM_NOSLEEP | VM_ENDALLOC),
    ],
    ["negative minaddr", () => a.xalloc(4096, 0, 0, 0, -1, 0, VM_NOSLEEP)],
  ];
  for (const [what, fn] of cases) {
    const before = state(a);
    assert.throws(fn, (e: unknown) => code(e) === "EINVAL", what);
    assert.deepEqual(state(a), before, what);
  }
  a.check();
});

test("free refuses bad addresses and sizes, changing nothing", () => {
  const a = Vmem.create("a", 4096, 1 << 20, 4096);
  const x = a.alloc(5000, VM_NOSLEEP);
  const y = a.xalloc(4096, 65536, 0, 0, 0, 0, VM_NOSLEEP);
  refused("BADFREE", () => a.free(x + 4096, 4096), a);
  refused("BADFREE", () => a.free(x, 4096), a);
  refused("BADFREE", () => a.xfree(x, 5001), a);
  refused("EINVAL", () => a.free(x, 0), a);
  refused("EINVAL", () => a.free(0, 4096), a);
  a.free(x, 5000);
  refused("BADFREE", () => a.free(x, 5000), a);
  a.xfree(y, 4096);
  assert.equal(a.size(VMEM_ALLOC), 0);
});

test("destroy refuses while the arena is a source; a destroyed arena refuses everything", () => {
  const src = Vmem.create("src", 4096, 1 << 20, 4096);
  const a = Vmem.create("a", 0, 0, 4096, { source: src });
  a.alloc(4096, VM_NOSLEEP);
  refused("EBUSY", () => src.destroy(), src, a);
  assert.equal(a.destroy(), 4096);
  assert.equal(a.destroyed, true);
  for (
    const fn of [
      () => a.alloc(4096, VM_NOSLEEP),
      () => a.free(4096, 4096),
      () => a.add(1 << 30, 4096),
    ]
  ) {
    assert.throws(fn, (e: unknown) => code(e) === "EINVAL");
  }
  assert.equal(src.destroy(), 4096);
});

// ---- Sleeping ----

test("a sleeping request that would wait is refused with WOULDBLOCK and undone", () => {
  const a = Vmem.create("a", 4096, 4 * 4096, 4096);
  a.alloc(3 * 4096, VM_NOSLEEP);
  refused("WOULDBLOCK", () => a.alloc(2 * 4096, VM_SLEEP), a);
  refused("WOULDBLOCK", () => a.alloc(2 * 4096, VM_SLEEP | VM_BESTFIT), a);
  refused("WOULDBLOCK", () => a.xalloc(4096, 32768, 0, 0, 0, 0, VM_SLEEP), a);
  refused("WOULDBLOCK", () => a.alloc(2 * 4096, VM_SLEEP | VM_NEXTFIT), a);
  assert.equal(a.alloc(4096, VM_SLEEP), 4 * 4096);
});

test("a sleeping next-fit request that steps the rotor and then would wait is undone", () => {
  // The rotor sits between two free segments of an imported span. Coming
  // full circle, the seed steps it (coalescing them), then imports from the
  // source, which would wait: the step must be undone with the rest.
  const P = 4096;
  const src = Vmem.create("src", 1 << 20, 8 * P, P);
  const a = Vmem.create("a", 0, 0, P, { source: src, qcacheMax: P, flags: VMC_NO_QCACHE });
  for (let i = 0; i < 3; i++) a.alloc(P, VM_NOSLEEP | VM_NEXTFIT); // imports 4 pages (min_import)
  for (let i = 0; i < 3; i++) a.free((1 << 20) + i * P, P);
  src.alloc(4 * P, VM_NOSLEEP);
  const twoFree: Seg[] = [["span", 1 << 20, 4 * P], ["free", 1 << 20, 3 * P], [
    "free",
    (1 << 20) + 3 * P,
    P,
  ]];
  assert.deepEqual(segs(a), twoFree, "the rotor keeps them apart");
  refused("WOULDBLOCK", () => a.alloc(5 * P, VM_SLEEP | VM_NEXTFIT), a, src);
  // With nosleep the seed makes the same step and fails: the arena changed.
  assert.equal(a.alloc(5 * P, VM_NOSLEEP | VM_NEXTFIT), 0);
  assert.deepEqual(segs(a), [["span", 1 << 20, 4 * P], ["free", 1 << 20, 4 * P]]);
  a.check();
  src.check();
});

test("allocWait waits for a free, then succeeds", async () => {
  const a = Vmem.create("a", 4096, 2 * 4096, 4096);
  const x = a.alloc(2 * 4096, VM_NOSLEEP);
  let done = 0;
  const p = a.allocWait(4096, VM_SLEEP).then((v) => (done = v));
  await Promise.resolve();
  assert.equal(done, 0);
  assert.equal(a.stats.wait, 1);
  a.free(x, 2 * 4096);
  assert.equal(await p, 4096);
  a.check();
});

test("allocWait cancelled by a signal rejects with ECANCELED and leaves the arena untouched", async () => {
  const a = Vmem.create("a", 4096, 4096, 4096);
  a.alloc(4096, VM_NOSLEEP);
  const walk = segs(a);
  const ac = new AbortController();
  const p = a.xallocWait(4096, 0, 0, 0, 0, 0, VM_SLEEP, ac.signal);
  ac.abort();
  await assert.rejects(p, (e: unknown) => code(e) === "ECANCELED");
  assert.deepEqual(segs(a), walk);
  await assert.rejects(
    a.allocWait(4096, VM_SLEEP, ac.signal),
    (e: unknown) => code(e) === "ECANCELED",
  );
});

test("wakeup() retries a request whose import failed for want of outside resources", async () => {
  const src = Vmem.create("src", 1 << 20, 1 << 20, 4096);
  let pages = 0;
  const a = Vmem.create("heap", 0, 0, 4096, {
    source: src,
    importFn: (
      s,
      size,
      flags,
    ) => (pages * 4096 >= size ? (pages -= size / 4096, s.alloc(size, flags)) : 0),
  });
  const p = a.allocWait(8192, VM_SLEEP);
  await Promise.resolve();
  pages = 2;
  a.wakeup();
  assert.equal(await p, 1 << 20);
});

test("a request blocked in its source is woken by frees into the source", async () => {
  const src = Vmem.create("src", 1 << 20, 4096, 4096);
  const a = Vmem.create("a", 0, 0, 4096, { source: src });
  const held = src.alloc(4096, VM_NOSLEEP);
  const p = a.allocWait(4096, VM_SLEEP);
  await Promise.resolve();
  assert.equal(src.stats.wait, 1);
  src.free(held, 4096);
  assert.equal(await p, 1 << 20);
});

/** How a promise stands after the microtasks queued now have run: "pending", "ok" or the error code. */
async function outcome(p: Promise<unknown>): Promise<string> {
  let state = "pending";
  p.then(() => (state = "ok"), (e) => (state = code(e)));
  for (let i = 0; i < 10; i++) await Promise.resolve();
  return state;
}

/** `a` imports page by page from a two-page source it fills, and never gives a span back. */
function blockedInSource(): { src: Vmem; a: Vmem; held: number[] } {
  const src = Vmem.create("src", 1 << 20, 2 * 4096, 4096);
  const a = Vmem.create("a", 0, 0, 4096, { source: src, releaseFn: null });
  const held = [a.alloc(4096, VM_NOSLEEP), a.alloc(4096, VM_NOSLEEP)];
  assert.equal(src.size(VMEM_FREE), 0);
  return { src, a, held };
}

test("a request waiting in its source is woken by a free in its own arena", async () => {
  const { src, a, held } = blockedInSource();
  const p = a.allocWait(4096, VM_SLEEP);
  assert.equal(await outcome(p), "pending");
  assert.equal(src.stats.wait, 1, "it waits in the source");
  a.free(held[1]!, 4096); // room in a; the span stays (no release function)
  assert.equal(await p, held[1]);
  a.check();
  src.check();
});

test("an arena's wakeup() wakes its requests that wait in a source", async () => {
  // The source imports from outside resources (pages) that come free
  // without any free in an arena; the owner then calls wakeup().
  let pages = 0;
  const root = Vmem.create("root", 1 << 20, 1 << 20, 4096);
  const src = Vmem.create("src", 0, 0, 4096, {
    source: root,
    importFn: (s, size, flags) => pages * 4096 >= size ? s.alloc(size, flags) : 0,
  });
  const a = Vmem.create("a", 0, 0, 4096, { source: src });
  const p = a.allocWait(4096, VM_SLEEP);
  assert.equal(await outcome(p), "pending");
  assert.equal(src.stats.wait, 1, "it waits in the source");
  pages = 1;
  a.wakeup();
  assert.equal(await p, 1 << 20);
  for (const x of [root, src, a]) x.check();
});

test("requests waiting on a destroyed arena are refused, wherever they wait", async () => {
  const { src, a } = blockedInSource();
  const inSource = a.allocWait(4096, VM_SLEEP);
  const b = Vmem.create("b", 4096, 4096, 4096);
  b.alloc(4096, VM_NOSLEEP);
  const direct = b.allocWait(4096, VM_SLEEP);
  assert.deepEqual([await outcome(inSource), await outcome(direct)], ["pending", "pending"]);
  assert.equal(a.destroy(), 2 * 4096);
  assert.equal(b.destroy(), 4096);
  assert.deepEqual([await outcome(inSource), await outcome(direct)], ["EINVAL", "EINVAL"]);
  // The source lost its waiter too: a free there wakes nobody.
  src.check();
});

test("a free into a quantum cache's magazine wakes the requests of its size", async () => {
  // One slab of four buffers fills the arena; a fifth request would need a
  // new slab and waits. A free parks its buffer in a magazine, where the
  // request can take it.
  const a = Vmem.create("a", 1 << 20, 16384, 4096, { qcacheMax: 4096 });
  const held = [1, 2, 3, 4].map(() => a.alloc(4096, VM_NOSLEEP));
  assert.equal(a.size(VMEM_FREE), 0);
  const p = a.allocWait(4096, VM_SLEEP);
  assert.equal(await outcome(p), "pending");
  a.free(held[2]!, 4096);
  assert.equal(a.summary().qcaches[0]!.slabs, 1, "the buffer stayed cached, its slab in use");
  assert.equal(await p, held[2]);
  a.check();
});

test("a request waiting in its source is cancelled by its signal, changing nothing", async () => {
  const { src, a, held } = blockedInSource();
  const look = () => [state(a), state(src)];
  const before = look();
  const ac = new AbortController();
  const p = a.allocWait(4096, VM_SLEEP, ac.signal);
  assert.equal(await outcome(p), "pending");
  ac.abort();
  assert.equal(await outcome(p), "ECANCELED");
  assert.deepEqual(look(), [before[0], { ...(before[1] as object), stats: src.stats }]);
  // A later request waits and wakes as usual.
  const q = a.allocWait(4096, VM_SLEEP);
  assert.equal(await outcome(q), "pending");
  a.free(held[0]!, 4096);
  assert.equal(await q, held[0]);
  a.check();
  src.check();
});

test("VM_PANIC turns a failure into ENOMEM", () => {
  const a = Vmem.create("a", 4096, 4096, 4096);
  assert.throws(() => a.alloc(8192, VM_NOSLEEP | VM_PANIC), (e: unknown) => code(e) === "ENOMEM");
});

// ---- Fault injection ----

test("mtbf fails nosleep allocations repeatably, never sleeping ones", () => {
  const run = (seed: number) => {
    const a = Vmem.create("a", 4096, 1 << 30, 4096);
    a.setMtbf(4, seed);
    const out: number[] = [];
    for (let i = 0; i < 40; i++) out.push(a.alloc(4096, VM_NOSLEEP) === 0 ? 0 : 1);
    for (let i = 0; i < 20; i++) assert.notEqual(a.alloc(4096, VM_SLEEP), 0);
    a.setMtbf(0, 0);
    for (let i = 0; i < 20; i++) assert.notEqual(a.alloc(4096, VM_NOSLEEP), 0);
    return out;
  };
  const first = run(7);
  assert.deepEqual(run(7), first);
  const fails = first.filter((x) => x === 0).length;
  assert.ok(fails > 2 && fails < 25, `${fails} failures`);
  const quiet = Vmem.create("q", 4096, 1 << 30, 4096);
  for (let i = 0; i < 100; i++) assert.notEqual(quiet.alloc(4096, VM_NOSLEEP), 0);
});

// ---- Quantum caches ----

test("quantum caches serve small sizes from slabs, highest chunk first, LIFO after", () => {
  const a = Vmem.create("a", 1 << 20, 1 << 20, 4096, { qcacheMax: 4 * 4096 });
  const x = a.alloc(3 * 4096, VM_NOSLEEP);
  // Slab size max(2^highbit(3 * 16384), 64) = 65536; 5 chunks of 12 KiB after
  // colour 4096 (the first slab's colour), the last one handed out first.
  assert.deepEqual(segs(a, VMEM_ALLOC), [["alloc", 1 << 20, 65536]]);
  assert.equal(x, (1 << 20) + 4096 + 4 * 3 * 4096);
  const y = a.alloc(3 * 4096 - 100, VM_NOSLEEP); // same cache
  assert.equal(y, x - 3 * 4096);
  a.free(y, 3 * 4096);
  assert.equal(a.alloc(3 * 4096, VM_NOSLEEP), y, "the magazine gives back the last free");
  assert.equal(a.size(VMEM_ALLOC), 65536);
  assert.equal(
    a.xalloc(4096, 0, 0, 0, 0, 0, VM_NOSLEEP),
    (1 << 20) + 65536,
    "xalloc bypasses the caches",
  );
  a.check();
});

test("quantum caches refuse frees of what they did not hand out", () => {
  const a = Vmem.create("a", 1 << 20, 1 << 20, 4096, { qcacheMax: 4 * 4096 });
  const x = a.alloc(4096, VM_NOSLEEP);
  const y = a.xalloc(4096, 0, 0, 0, 0, 0, VM_NOSLEEP);
  refused("BADFREE", () => a.free(y, 4096), a); // xalloc'ed: not a cache buffer
  refused("BADFREE", () => a.free(x, 8192), a); // another cache
  refused("BADFREE", () => a.xfree(x, 4096), a); // the slab is the segment, not the buffer
  a.free(x, 4096);
  refused("BADFREE", () => a.free(x, 4096), a); // double free
  assert.throws(() => a.free(x, 4096), /buffer is not allocated/);
  assert.throws(() => a.free(y, 4096), /not one of its buffers/);
  a.xfree(y, 4096);
  a.check();
});

test("quantum caches refuse bad sizes and flags as the arena does, changing nothing", () => {
  const a = Vmem.create("a", 1 << 20, 1 << 24, 4096, { qcacheMax: 4 * 4096 });
  const x = a.alloc(4096, VM_NOSLEEP);
  // A round in every cache's loaded magazine, so that a bad size let through
  // to a cache would be served at once.
  for (let k = 1; k <= 4; k++) a.free(a.alloc(k * 4096, VM_NOSLEEP), k * 4096);
  const look = () => [state(a), a.summary().qcaches];
  const cases: [string, string, () => unknown][] = [
    ["EINVAL", "size 0", () => a.alloc(0, VM_NOSLEEP)],
    ["EINVAL", "size -0", () => a.alloc(-0, VM_NOSLEEP)],
    ["EINVAL", "negative size", () => a.alloc(-4096, VM_NOSLEEP)],
    ["EINVAL", "size not integer", () => a.alloc(4096.5, VM_NOSLEEP)],
    ["EINVAL", "size below one", () => a.alloc(0.5, VM_NOSLEEP)],
    ["EINVAL", "size NaN", () => a.alloc(NaN, VM_NOSLEEP)],
    ["EINVAL", "unknown flag", () => a.alloc(4096, VM_NOSLEEP | 0x8)],
    ["EINVAL", "creation flag", () => a.alloc(4096, VM_NOSLEEP | 0x10000)],
    ["EINVAL", "flags not integer", () => a.alloc(4096, 1.5)],
    ["EINVAL", "negative flags", () => a.alloc(4096, -1)],
    ["EINVAL", "free of size 0", () => a.free(x, 0)],
    ["EINVAL", "free of a size not integer", () => a.free(x, 4096.5)],
    ["EINVAL", "free of a negative size", () => a.free(x, -4096)],
    ["BADFREE", "free to the wrong cache", () => a.free(x, 8192)],
    ["BADFREE", "free of an address inside a buffer", () => a.free(x + 1, 4096)],
  ];
  for (const [want, what, fn] of cases) {
    const before = look();
    assert.throws(fn, (e: unknown) => code(e) === want, what);
    assert.deepEqual(look(), before, what);
  }
  a.free(x, 4096);
  a.check();
});

/** Values of every type but a plain number, and numbers no call accepts as an address or size. */
const HOSTILE: readonly unknown[] = [
  4096n,
  1n,
  "4096",
  "1",
  true,
  false,
  null,
  undefined,
  NaN,
  Symbol("s"),
  { valueOf: () => 4096 },
  [4096],
];

test("every call refuses arguments of the wrong type with EINVAL naming them, changing nothing", () => {
  // A round in every cache's loaded magazine, so that a size or flag coerced
  // to a number (true is 1, "4096" is 4096) would be served at once; a
  // buffer and a segment held, so that a coerced free would go through.
  const a = Vmem.create("a", 1 << 20, 1 << 24, 4096, { qcacheMax: 4 * 4096 });
  for (let k = 1; k <= 4; k++) a.free(a.alloc(k * 4096, VM_NOSLEEP), k * 4096);
  const x = a.alloc(4096, VM_NOSLEEP);
  const y = a.xalloc(4096, 0, 0, 0, 0, 0, VM_NOSLEEP);
  const z = a.alloc(8 * 4096, VM_NOSLEEP);
  const look = () => [state(a), a.summary()];
  const calls: [string, (v: never) => unknown][] = [
    ["size", (v) => a.alloc(v, VM_NOSLEEP)],
    ["flags", (v) => a.alloc(4096, v)],
    ["flags", (v) => a.alloc(8 * 4096, v)],
    ["size", (v) => a.xalloc(v, 0, 0, 0, 0, 0, VM_NOSLEEP)],
    ["align", (v) => a.xalloc(4096, v, 0, 0, 0, 0, VM_NOSLEEP)],
    ["phase", (v) => a.xalloc(4096, 0, v, 0, 0, 0, VM_NOSLEEP)],
    ["nocross", (v) => a.xalloc(4096, 0, 0, v, 0, 0, VM_NOSLEEP)],
    ["minaddr", (v) => a.xalloc(4096, 0, 0, 0, v, 0, VM_NOSLEEP)],
    ["maxaddr", (v) => a.xalloc(4096, 0, 0, 0, 0, v, VM_NOSLEEP)],
    ["flags", (v) => a.xalloc(4096, 0, 0, 0, 0, 0, v)],
    ["addr", (v) => a.free(v, 4096)],
    ["size", (v) => a.free(x, v)],
    ["addr", (v) => a.free(v, 8 * 4096)],
    ["size", (v) => a.free(z, v)],
    ["addr", (v) => a.xfree(v, 4096)],
    ["size", (v) => a.xfree(y, v)],
    ["mask", (v) => a.size(v)],
  ];
  for (const v of HOSTILE) {
    for (const [arg, call] of calls) {
      const what = `${arg} ${describe(v)} in ${call}`;
      const before = look();
      assert.throws(
        () => call(v as never),
        (e: unknown) =>
          e instanceof KernelError && e.code === "EINVAL" && e.message.includes(arg) &&
          e.message.includes(describe(v)),
        what,
      );
      assert.deepEqual(look(), before, what);
    }
  }
  // Numbers that are no address are refused the same way, on the quantum
  // caches' fast path too; minus the address of a cached buffer (its key) included.
  for (const bad of [-(x - 4096), 0, -0, x + 0.5, Infinity, -Infinity, 2 ** 53]) {
    refused("EINVAL", () => a.free(bad, 4096), a);
    refused("EINVAL", () => a.free(bad, 8 * 4096), a);
  }
  a.free(x, 4096);
  a.xfree(y, 4096);
  a.free(z, 8 * 4096);
  a.check();
});

test("quantum caches are chosen by size at every quantum, 2^31 and beyond included", () => {
  for (const q of [1, 4096, 2 ** 30, 2 ** 31, 2 ** 32, 2 ** 40]) {
    const base = q * 64;
    const a = Vmem.create(`q${q}`, base, q * 2 ** 12, q, { qcacheMax: 4 * q });
    const sizes = [1, 2 ** 20, 2 ** 31 - 1, q - 1, q, q + 1, 2 * q, 3 * q + 1, 4 * q]
      .filter((s) => s >= 1 && s <= 4 * q);
    const held: [number, number][] = [];
    for (const size of sizes) {
      const cache = Math.ceil(size / q) - 1;
      const before = a.summary().qcaches[cache]!.bufInUse;
      const addr = a.alloc(size, VM_NOSLEEP);
      assert.ok(addr >= base, `quantum ${q}, size ${size}`);
      assert.equal(a.summary().qcaches[cache]!.bufInUse, before + 1, `quantum ${q}, size ${size}`);
      held.push([addr, size]);
      a.check();
    }
    refused("BADFREE", () => a.free(held[0]![0], 2 * q), a);
    for (const [addr, size] of held) a.free(addr, size);
    for (const c of a.summary().qcaches) assert.equal(c.bufInUse, 0, `quantum ${q}`);
    a.check();
  }
});

test("reap returns the depot's magazines and wholly free slabs", () => {
  const a = Vmem.create("a", 1 << 20, 1 << 24, 4096, { qcacheMax: 4096 });
  const held: number[] = [];
  for (let i = 0; i < 200; i++) held.push(a.alloc(4096, VM_NOSLEEP));
  for (const x of held) a.free(x, 4096);
  const cache = a.summary().qcaches[0]!;
  assert.ok(cache.depotFull > 0 && cache.slabs > 0);
  a.reap();
  const after = a.summary().qcaches[0]!;
  assert.equal(after.depotFull, 0);
  assert.equal(after.depotEmpty, 0);
  assert.equal(after.bufCached, cache.bufCached - cache.depotFull * cache.magsize);
  assert.ok(a.size(VMEM_ALLOC) < 200 * 4096);
  a.check();
  assert.equal(a.destroy(), 0, "destroy purges the CPU layer too");
});

test("an arena that cannot satisfy a request reaps its quantum caches and retries", () => {
  const a = Vmem.create("a", 1 << 20, 1 << 17, 4096, { qcacheMax: 4096 });
  const held: number[] = [];
  for (let i = 0; i < 32; i++) held.push(a.alloc(4096, VM_NOSLEEP));
  for (const x of held) a.free(x, 4096);
  assert.equal(a.size(VMEM_ALLOC), 1 << 17, "every slab still held by the cache");
  assert.equal(a.alloc(1 << 16, VM_NOSLEEP), 1 << 20);
  a.check();
});

test("a sleeping request that reaps and still would wait is undone, caches included", () => {
  const a = Vmem.create("a", 1 << 20, 1 << 17, 4096, { qcacheMax: 4096 });
  const held: number[] = [];
  for (let i = 0; i < 32; i++) held.push(a.alloc(4096, VM_NOSLEEP));
  for (const x of held.slice(0, 20)) a.free(x, 4096);
  const before = [state(a), a.summary()];
  assert.throws(() => a.alloc(1 << 17, VM_SLEEP), (e: unknown) => code(e) === "WOULDBLOCK");
  assert.deepEqual([state(a), a.summary()], before);
  a.check();
});

test("a quantum cache put back to a saved state hands out what it would have then", () => {
  let next = 1 << 20;
  const src = {
    slabAlloc: (size: number): number => (next += size) - size,
    slabFree: (): void => {},
  };
  // 4096-byte buffers get one-round magazines: every few frees reload the CPU layer.
  const qc = new QuantumCache("q", 4096, 4096, 65536, src);
  const xs = [1, 2, 3, 4, 5].map(() => qc.alloc(VM_NOSLEEP));
  for (const x of xs.slice(0, 3)) qc.free(x);
  const saved = qc.saveState();
  const want = [1, 2, 3, 4].map(() => qc.alloc(VM_NOSLEEP));
  for (const x of [...want, ...xs.slice(3)]) qc.free(x);
  qc.restoreState(saved);
  assert.deepEqual([1, 2, 3, 4].map(() => qc.alloc(VM_NOSLEEP)), want);
  qc.check();
});

test("sizes of one cache share it, as kmem's cache index does", () => {
  const a = Vmem.create("a", 4096, 1 << 20, 8, { qcacheMax: 64 });
  const x = a.alloc(5, VM_NOSLEEP);
  a.free(x, 7);
  assert.equal(a.alloc(8, VM_NOSLEEP), x);
  assert.equal(a.summary().qcaches.length, 8);
});

// ---- Groups ----

/** An arena with quantum caches whose depots hold full magazines (so a reap would show). */
function loadedCaches(name: string, group?: VmemGroup): Vmem {
  const a = Vmem.create(name, 1 << 20, 1 << 24, 4096, { qcacheMax: 2 * 4096, group });
  for (const size of [4096, 8192]) {
    const held: number[] = [];
    for (let i = 0; i < 100; i++) held.push(a.alloc(size, VM_NOSLEEP));
    for (const x of held) a.free(x, size);
  }
  assert.ok(a.summary().qcaches.every((c) => c.depotFull > 0));
  return a;
}

test("a failed request reaps the quantum caches of its own group only", () => {
  const g1 = new VmemGroup(), g2 = new VmemGroup();
  const mine = loadedCaches("mine", g1);
  const theirs = loadedCaches("theirs", g2);
  const bare = loadedCaches("bare");
  const look = (a: Vmem) => [state(a), a.summary()];
  const before = [look(theirs), look(bare)];
  // Full: nothing but a reap can make room, and the reap is not enough.
  const full = Vmem.create("full", 1 << 30, 4096, 4096, { group: g1 });
  full.alloc(4096, VM_NOSLEEP);
  const reaped = mine.summary().qcaches;
  assert.equal(full.alloc(4096, VM_NOSLEEP), 0);
  assert.ok(mine.summary().qcaches.every((c) => c.depotFull === 0), "its group reaped");
  assert.notDeepEqual(mine.summary().qcaches, reaped);
  assert.deepEqual([look(theirs), look(bare)], before, "no other group touched");
  for (const a of [mine, theirs, bare, full]) a.check();
});

test("an arena joins its source's group; a source of another group is refused", () => {
  const g = new VmemGroup();
  const src = Vmem.create("src", 1 << 20, 1 << 20, 4096, { group: g });
  const child = Vmem.create("child", 0, 0, 4096, { source: src, qcacheMax: 4096 });
  for (let i = 0; i < 100; i++) child.free(child.alloc(4096, VM_NOSLEEP), 4096);
  const other = Vmem.create("other", 1 << 30, 1 << 20, 4096, { qcacheMax: 4096 });
  for (let i = 0; i < 100; i++) other.free(other.alloc(4096, VM_NOSLEEP), 4096);
  const otherCaches = other.summary().qcaches;
  // A failure in src reaps child's caches (one group), never other's (the default group).
  src.alloc(src.size(VMEM_FREE), VM_NOSLEEP);
  assert.equal(src.alloc(4096, VM_NOSLEEP), 0);
  assert.equal(child.summary().qcaches[0]!.depotFull, 0);
  assert.deepEqual(other.summary().qcaches, otherCaches);
  refused(
    "EINVAL",
    () => Vmem.create("x", 0, 0, 4096, { source: src, group: new VmemGroup() }),
    src,
  );
  for (const bad of [{}, "g", 1n, true, 0]) {
    assert.throws(
      () => Vmem.create("x", 4096, 4096, 4096, { group: bad as unknown as VmemGroup }),
      (e: unknown) => code(e) === "EINVAL",
      String(bad),
    );
  }
});

test("a sleeping request in one group does not journal another group's arenas", () => {
  // The import function of a sleeping request in g1 makes a sleeping
  // request in g2 that succeeds, then fails the import. The g1 request is
  // undone; the g2 request, finished and answered, must stay done.
  const g1 = new VmemGroup(), g2 = new VmemGroup();
  const other = Vmem.create("other", 1 << 30, 1 << 20, 4096, { group: g2 });
  const got: number[] = [];
  const src = Vmem.create("src", 1 << 20, 1 << 20, 4096, { group: g1 });
  const a = Vmem.create("a", 0, 0, 4096, {
    source: src,
    importFn: () => {
      got.push(other.alloc(8192, VM_SLEEP));
      return 0;
    },
  });
  refused("WOULDBLOCK", () => a.alloc(4096, VM_SLEEP), a, src);
  assert.deepEqual(got, [1 << 30]);
  assert.deepEqual(segs(other, VMEM_ALLOC), [["alloc", 1 << 30, 8192]]);
  assert.equal(other.stats.alloc, 1);
  other.check();
  other.free(got[0]!, 8192);
});

test("the counters count allocations, frees and chain steps; refusals count nothing", () => {
  const a = Vmem.create("a", 1 << 20, 1 << 20, 1);
  const r = new Mulberry32(7);
  const live: [number, number][] = [];
  let allocs = 0, frees = 0, lookups = 0;
  for (let step = 0; step < 400; step++) {
    if (live.length === 0 || r.next() % 3 !== 0) {
      const size = r.next() % 64 + 1;
      live.push([a.alloc(size, r.next() % 2 === 0 ? VM_NOSLEEP : VM_BESTFIT | VM_NOSLEEP), size]);
      allocs++;
    } else {
      const [addr, size] = live.splice(r.next() % live.length, 1)[0]!;
      refused("BADFREE", () => a.free(addr, size + 1), a);
      refused("BADFREE", () => a.free(addr + 1, size), a);
      if (r.next() % 2 === 0) a.free(addr, size);
      else a.xfree(addr, size);
      frees++;
      // A free finds its segment in one bucket's chain: never fewer steps than before.
      assert.ok(a.stats.lookup >= lookups);
      lookups = a.stats.lookup;
    }
    assert.deepEqual([a.stats.alloc, a.stats.free], [allocs, frees], `step ${step}`);
    a.check();
  }
  // Hundreds of segments in the hash: some frees walked a chain.
  assert.ok(lookups > 0 && live.length > 100, `${lookups} steps, ${live.length} live`);
  refused("WOULDBLOCK", () => a.alloc(1 << 20, VM_SLEEP), a);
  for (const [addr, size] of live) a.free(addr, size);
  assert.deepEqual([a.stats.alloc, a.stats.free, a.stats.memInuse], [allocs, allocs, 0]);
  a.check();
});

test("a refused sleeping request undoes the frees its reap made into magazines", () => {
  // A sleeping request that fails reaps the quantum caches of its group:
  // mid's wholly free slabs go back to mid, whose wholly free spans go back
  // to top through top's quantum-cache fast path (pushes onto its
  // magazines). The request then would wait, so all of it is undone: top
  // must not keep buffers that mid holds again.
  const P = 4096;
  const g = new VmemGroup();
  const top = Vmem.create("top", 1 << 20, 64 * P, P, { qcacheMax: 4 * P, group: g });
  const mid = Vmem.create("mid", 0, 0, P, { source: top, qcacheMax: P });
  const held: number[] = [];
  for (let i = 0; i < 12; i++) held.push(mid.alloc(P, VM_NOSLEEP));
  for (const x of held) mid.free(x, P);
  const full = Vmem.create("full", 1 << 30, P, P, { group: g });
  full.alloc(P, VM_NOSLEEP);
  const look = () => [state(top), top.summary(), state(mid), mid.summary()];
  const before = look();
  assert.throws(() => full.alloc(P, VM_SLEEP), (e) => code(e) === "WOULDBLOCK");
  assert.deepEqual(look(), before);
  top.check();
  mid.check();
  // The same failure without sleep keeps its reap: the spans are back in top's magazines.
  assert.equal(full.alloc(P, VM_NOSLEEP), 0);
  assert.ok(mid.summary().qcaches[0]!.slabs < 3);
  assert.ok(top.summary().qcaches[3]!.bufCached > 0);
});

test("sleeping requests of two groups wait and wake independently", async () => {
  const g1 = new VmemGroup(), g2 = new VmemGroup();
  const a = Vmem.create("a", 4096, 4096, 4096, { group: g1 });
  const b = Vmem.create("b", 4096, 4096, 4096, { group: g2 });
  a.alloc(4096, VM_NOSLEEP);
  b.alloc(4096, VM_NOSLEEP);
  let gotA = 0, gotB = 0;
  const pa = a.allocWait(4096, VM_SLEEP).then((x) => (gotA = x));
  const pb = b.allocWait(4096, VM_SLEEP).then((x) => (gotB = x));
  await Promise.resolve();
  assert.deepEqual([a.stats.wait, b.stats.wait], [1, 1]);
  b.free(4096, 4096);
  await pb;
  await Promise.resolve();
  assert.deepEqual([gotA, gotB], [0, 4096]);
  a.free(4096, 4096);
  await pa;
  assert.equal(gotA, 4096);
  a.check();
  b.check();
});

// ---- Hash, walk, views ----

test("the allocated-segment hash grows and shrinks with the arena", () => {
  // About two buckets per allocated segment, resized by factors of 4: 64
  // buckets from 20 segments, 256 from 84, 1024 from 340; back down at 169,
  // 41 and 9.
  const a = Vmem.create("a", 1, 1 << 20, 1);
  const buckets = () => a.summary().hashBuckets;
  assert.equal(buckets(), 16);
  const xs: number[] = [];
  const seen: number[] = [];
  for (let i = 0; i < 1000; i++) {
    xs.push(a.alloc(1, VM_NOSLEEP));
    if (buckets() !== (seen.at(-1) ?? 16)) seen.push(i + 1, buckets());
  }
  assert.deepEqual(seen, [20, 64, 84, 256, 340, 1024]);
  seen.length = 0;
  for (const x of xs) {
    a.free(x, 1);
    if (buckets() !== (seen.at(-1) ?? 1024)) seen.push(a.size(VMEM_ALLOC), buckets());
  }
  assert.deepEqual(seen, [169, 256, 41, 64, 9, 16]);
  a.check();
});

test("a reentrant walk lets the callback use the arena; its marker defers coalescing", () => {
  const a = Vmem.create("a", 100, 100, 1);
  const xs = [10, 10, 10, 10].map((s) => a.alloc(s, VM_NOSLEEP));
  const seen: Seg[] = [];
  a.walk(VMEM_ALLOC | VMEM_REENTRANT, (start, size, type) => {
    seen.push([type, start, size]);
    a.free(start, size);
    // The marker sits right after the freed segment: it does not merge with the next.
    a.check();
  });
  assert.deepEqual(seen, xs.map((x): Seg => ["alloc", x, 10]));
  assert.deepEqual(segs(a), [["span", 100, 100], ["free", 100, 100]]);
  a.check();
});

test("a plain walk locks the arena against changes; a walker mask walks nothing", () => {
  const a = Vmem.create("a", 100, 100, 1);
  const x = a.alloc(10, VM_NOSLEEP);
  let n = 0;
  a.walk(ALL, () => {
    n++;
    assert.throws(() => a.free(x, 10), (e: unknown) => code(e) === "EDEADLK");
    assert.throws(() => a.alloc(1, VM_NOSLEEP), (e: unknown) => code(e) === "EDEADLK");
    assert.equal(a.size(VMEM_ALLOC), 10);
    assert.deepEqual(segs(a, VMEM_SPAN), [["span", 100, 100]], "nested read-only walks are fine");
  });
  assert.equal(n, 3);
  a.walk(ALL | VMEM_WALKER, () => assert.fail("walked"));
  a.free(x, 10);
});

test("summary, dump and whatis describe the arena", () => {
  const a = Vmem.create("arena", 4096, 64 * 4096, 4096, { qcacheMax: 4096 });
  const x = a.alloc(3 * 4096, VM_NOSLEEP);
  const c = a.alloc(4096, VM_NOSLEEP);
  const s = a.summary();
  assert.equal(s.size, 64 * 4096);
  assert.equal(s.inuse, 3 * 4096 + 16384, "a slab of max(2^highbit(3 * 4096), 64)");
  assert.equal(s.spans, 1);
  assert.equal(s.busySegments, 2);
  assert.deepEqual(
    s.orders.map((o) => [o.size, o.inuseCount, o.freeCount]),
    [[8192, 1, 0], [16384, 1, 0], [131072, 0, 1]],
  );
  assert.match(a.dump(), /vmem 'arena' quantum 4096[\s\S]*rotor[\s\S]*freelist\[17\]/);
  assert.equal(
    a.whatis(x + 5),
    `0x${(x + 5).toString(16)} is 0x${x.toString(16)}+5 in VMEM 'arena' (allocated)`,
  );
  assert.match(a.whatis(c) ?? "", /quantum cache 'arena_4096' \(allocated\)/);
  assert.match(a.whatis(60 * 4096) ?? "", /\(free\)$/);
  assert.equal(a.whatis(1 << 30), null);
});

test("addresses near 2^53 stay exact", () => {
  const top = 2 ** 53 - 2 ** 20;
  const a = Vmem.create("top", top, 2 ** 20 - 4096, 4096);
  const x = a.xalloc(8192, 65536, 4096 * 3, 0, 0, 0, VM_NOSLEEP);
  assert.equal(x, top + 4096 * 3);
  // The first list that fits 4096 holds [top, top + 12288): its end.
  assert.equal(a.alloc(4096, VM_NOSLEEP | VM_ENDALLOC), top + 8192);
  assert.equal(a.xalloc(4096, 0, 0, 0, 2 ** 53 - 12288, 0, VM_NOSLEEP), 2 ** 53 - 12288);
  assert.equal(a.alloc(2 ** 20, VM_NOSLEEP), 0);
  a.check();
});

// ---- Randomised ----

test("random requests over an import chain keep every invariant", () => {
  const r = new Mulberry32(42);
  const root = Vmem.create("root", 1 << 24, 1 << 22, 4096);
  const mid = Vmem.create("mid", 0, 0, 512, {
    source: root,
    flags: VMC_NO_QCACHE,
    qcacheMax: 4096,
  });
  const leaf = Vmem.create("leaf", 0, 0, 16, { source: mid, qcacheMax: 64 });
  const arenas = [root, mid, leaf];
  const live: { v: Vmem; addr: number; size: number; x: boolean }[] = [];
  const policies = [0, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT];
  for (let step = 0; step < 1500; step++) {
    const v = arenas[r.below(3)]!;
    const op = r.below(10);
    if (op < 4) {
      const size = (r.below(3) === 0 ? 1 : v.quantum) * (r.below(40) + 1);
      const flags = (r.below(6) === 0 ? VM_SLEEP : VM_NOSLEEP) | policies[r.below(4)]!;
      try {
        const addr = v.alloc(size, flags);
        if (addr !== 0) live.push({ v, addr, size, x: false });
      } catch (e) {
        assert.equal(code(e), "WOULDBLOCK");
      }
    } else if (op < 6) {
      const size = v.quantum * (r.below(8) + 1);
      const align = v.quantum << r.below(4);
      const addr = v.xalloc(size, align, 0, r.below(2) ? 0 : align * 16, 0, 0, VM_NOSLEEP);
      if (addr !== 0) live.push({ v, addr, size, x: true });
    } else if (live.length > 0) {
      const i = r.below(live.length);
      const b = live[i]!;
      if (b.x) b.v.xfree(b.addr, b.size);
      else b.v.free(b.addr, b.size);
      live.splice(i, 1);
    }
    for (const a of arenas) a.check();
  }
  for (const b of live) b.x ? b.v.xfree(b.addr, b.size) : b.v.free(b.addr, b.size);
  leaf.reap();
  for (const a of arenas) a.check();
  assert.equal(leaf.destroy() >= 0, true);
});
