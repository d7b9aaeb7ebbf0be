import { test } from "node:test";
import assert from "node:assert/strict";
import { countedImports, errorCode, refusedUnchanged, segsOf as segs } from "./_test_util.ts";
import { KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import { VMEM_ALLOC, VMEM_FREE, VMEM_SPAN } from "./vmem.ts";
import {
  M_BESTFIT,
  M_FIRSTFIT,
  M_NEXTFIT,
  M_NOWAIT,
  M_WAITOK,
  VMEM_MAXFREE,
  VmemFreeBSD,
} from "./vmem_freebsd.ts";

const ALL = VMEM_ALLOC | VMEM_FREE | VMEM_SPAN;

/** Everything observable about an arena. */
function state(vm: VmemFreeBSD): unknown {
  return {
    segs: segs(vm),
    sizes: [vm.size(VMEM_ALLOC), vm.size(VMEM_FREE), vm.size(VMEM_MAXFREE)],
    imported: vm.imported,
  };
}

/** Runs `fn`, which must throw a KernelError with `want`, and checks that nothing changed. */
function refused(want: string, fn: () => unknown, ...arenas: VmemFreeBSD[]): void {
  refusedUnchanged(want, fn, state, arenas);
}

/** The layout of the reference's first samples: holes of 40 and 50 units, the 50 freed last. */
function twoHoles(): VmemFreeBSD {
  const a = VmemFreeBSD.create("a", 1000, 1000, 1);
  assert.equal(a.alloc(40, M_NOWAIT), 1000);
  assert.equal(a.alloc(1, M_NOWAIT), 1040);
  assert.equal(a.alloc(50, M_NOWAIT), 1041);
  assert.equal(a.alloc(1, M_NOWAIT), 1091);
  a.free(1000, 40);
  a.free(1041, 50);
  return a;
}

// ---- Decisions ----

test("every size is rounded up to the quantum and kept rounded", () => {
  const a = VmemFreeBSD.create("a", 0x1000, 0x10000, 0x100);
  assert.equal(a.alloc(1, M_NOWAIT), 0x1000);
  assert.equal(a.xalloc(0x101, 0, 0, 0, 0, 0, M_NOWAIT), 0x1100);
  assert.deepEqual(segs(a), [
    ["span", 0x1000, 0x10000],
    ["alloc", 0x1000, 0x100],
    ["alloc", 0x1100, 0x200],
    ["free", 0x1300, 0xfd00],
  ]);
  assert.equal(a.size(VMEM_ALLOC), 0x300);
  assert.equal(a.roundupSize(0x101), 0x200);
  // A free may name any size that rounds to the allocated one, and no other.
  refused("BADFREE", () => a.free(0x1100, 0x100), a);
  refused("BADFREE", () => a.free(0x1100, 0x201), a);
  a.xfree(0x1100, 0x1ff);
  a.free(0x1000, 0x80);
  assert.deepEqual(segs(a), [["span", 0x1000, 0x10000], ["free", 0x1000, 0x10000]]);
  a.check();
});

test("best-fit takes the first fitting segment in list order, not the smallest", () => {
  const a = twoHoles();
  // 40 and 50 share the list of 32..63 units, the 50 at its head.
  assert.equal(a.alloc(35, M_NOWAIT | M_BESTFIT), 1041);
  assert.equal(a.alloc(35, M_NOWAIT), 1000, "no policy word is best-fit");
  a.check();
});

test("first-fit starts a list higher unless the size is its list's smallest", () => {
  const a = twoHoles();
  // 35 is not the smallest size of list 31 (32..63): first-fit starts at list
  // 32 and takes the head of the first non-empty list above, the tail.
  assert.equal(a.alloc(35, M_NOWAIT | M_FIRSTFIT), 1092);
  // 32 is list 31's smallest: first-fit looks at its head.
  assert.equal(a.alloc(32, M_NOWAIT | M_FIRSTFIT), 1041);
  assert.equal(a.size(VMEM_MAXFREE), 512, "the tail of 841 units sits on list 35 (512..1023)");
  a.check();
});

test("first-fit looks only at list heads, then goes on as best-fit", () => {
  const a = VmemFreeBSD.create("c", 1024, 256, 1);
  for (const [size, want] of [[6, 1024], [12, 1030], [62, 1042], [12, 1104], [164, 1116]]) {
    assert.equal(a.alloc(size!, M_NOWAIT), want);
  }
  a.free(1104, 12);
  a.free(1030, 12);
  // The head of the list of 12, at 1030, has no 16-aligned 8 units; the
  // segment behind it has. First-fit fails on the heads, best-fit finds it.
  assert.equal(a.xalloc(8, 16, 0, 0, 0, 0, M_NOWAIT | M_FIRSTFIT), 1104);
  a.check();
});

test("a carve puts the left remainder at its list's head, then the right one", () => {
  const b = VmemFreeBSD.create("b", 1000, 100, 1);
  assert.equal(b.xalloc(10, 0, 0, 0, 1045, 0, M_NOWAIT), 1045);
  assert.equal(b.alloc(45, M_NOWAIT), 1055, "the right remainder went in last: it is the head");
  assert.equal(b.alloc(45, M_NOWAIT), 1000);
  b.check();
});

test("xalloc places as vmem_fit: minaddr, align with phase, nocross, exclusive maxaddr", () => {
  const a = VmemFreeBSD.create("a", 0, 0x10000, 0x10);
  assert.equal(a.xalloc(0x10, 0x100, 0x30, 0, 0x1001, 0, M_NOWAIT), 0x1030);
  // 0x80 at 0x1f80 would cross 0x2000: moved to the boundary plus the phase.
  assert.equal(a.xalloc(0x100, 0x80, 0, 0x1000, 0x1f80, 0, M_NOWAIT), 0x2000);
  // An align above nocross is accepted (illumos refuses it).
  assert.equal(a.xalloc(0x10, 0x2000, 0, 0x1000, 0, 0, M_NOWAIT), 0);
  // maxaddr is exclusive: the last unit at 0x2fff fits, at 0x3000 it does not.
  assert.equal(a.xalloc(0x1000, 0x1000, 0, 0, 0x2000, 0x4000, M_NOWAIT), 0x3000);
  assert.equal(a.xalloc(0x100, 0x100, 0, 0, 0x3e00, 0x4000, M_NOWAIT), -1);
  assert.equal(a.xalloc(0x100, 0x100, 0, 0, 0x3e00, 0x4001, M_NOWAIT), -1);
  assert.equal(a.xalloc(0x100, 0x100, 0, 0, 0x2000, 0x2200, M_NOWAIT), 0x2100);
  a.check();
});

test("base 0 is a span start like any other; addresses near 2^53 stay exact", () => {
  const a = VmemFreeBSD.create("a", 0, 4096, 4096);
  assert.equal(a.alloc(1, M_NOWAIT), 0);
  assert.equal(a.alloc(1, M_NOWAIT), -1);
  a.free(0, 4096);
  const top = 2 ** 53 - 2 ** 20;
  const b = VmemFreeBSD.create("b", top, 2 ** 20 - 4096, 4096);
  assert.equal(b.alloc(4096, M_NOWAIT), top);
  assert.equal(b.xalloc(4096, 0, 0, 0, top + 4096 * 7, 0, M_NOWAIT), top + 4096 * 7);
  b.free(top, 1);
  b.xfree(top + 4096 * 7, 4096);
  assert.deepEqual(segs(b), [["span", top, 2 ** 20 - 4096], ["free", top, 2 ** 20 - 4096]]);
  b.check();
});

test("a free coalesces with both neighbours; maxfree is the smallest size of the top list", () => {
  const a = VmemFreeBSD.create("a", 1000, 100, 1);
  for (const want of [1000, 1010, 1020]) assert.equal(a.alloc(10, M_NOWAIT), want);
  assert.equal(a.size(VMEM_MAXFREE), 64, "70 units sit on list 32 (64..127)");
  a.free(1000, 10);
  a.free(1020, 10);
  a.free(1010, 10);
  assert.deepEqual(segs(a), [["span", 1000, 100], ["free", 1000, 100]]);
  assert.equal(a.size(VMEM_MAXFREE), 64);
  assert.equal(a.size(VMEM_FREE), 100);
  a.add(5000, 31);
  assert.equal(a.size(VMEM_ALLOC | VMEM_FREE), 131);
  a.alloc(100, M_NOWAIT);
  assert.equal(a.size(VMEM_MAXFREE), 31, "lists 0-30 hold one size each");
  a.alloc(31, M_NOWAIT);
  assert.equal(a.size(VMEM_MAXFREE), 0);
  a.check();
});

// ---- Imports, limits, reclaim ----

/** A source of 64 KiB in pages, and an arena of quantum 16 importing from it. */
function importPair(): { s: VmemFreeBSD; a: VmemFreeBSD } {
  const s = VmemFreeBSD.create("s", 1 << 20, 1 << 16, 4096);
  const a = VmemFreeBSD.create("a", 0, 0, 16, { source: s });
  return { s, a };
}

test("imports are sized as vmem_import: twice the alignment added, the import quantum", () => {
  const { s, a } = importPair();
  assert.equal(a.alloc(100, M_NOWAIT), 1 << 20);
  assert.deepEqual(segs(a), [["span", 1 << 20, 4096], ["alloc", 1 << 20, 112], [
    "free",
    (1 << 20) + 112,
    4096 - 112,
  ]]);
  // 4000 units aligned to 4096: 2 * 4096 + 4000 rounded to 4096 is 12288.
  assert.equal(a.xalloc(4000, 4096, 0, 0, 0, 0, M_NOWAIT), (1 << 20) + 4096);
  assert.equal(a.imported, 4096 + 12288);
  assert.equal(s.size(VMEM_ALLOC), 4096 + 12288);
  // A wholly free imported span goes back to the source at once.
  a.xfree((1 << 20) + 4096, 4000);
  assert.equal(a.imported, 4096);
  assert.equal(s.size(VMEM_ALLOC), 4096);
  a.free(1 << 20, 100);
  assert.deepEqual(segs(a), []);
  assert.equal(s.size(VMEM_ALLOC), 0);
  // An import quantum that is not a power of two is taken as it is.
  a.setImport(s, 48);
  assert.equal(a.alloc(100, M_NOWAIT), 1 << 20);
  assert.deepEqual(segs(a, VMEM_SPAN), [["span", 1 << 20, 144]]);
  s.check();
  a.check();
});

test("constrained requests import too; spans imported on the way stay", () => {
  const { s, a } = importPair();
  assert.equal(a.alloc(16, M_NOWAIT), 1 << 20);
  // Each import lands one page higher until one starts at minaddr.
  const min = (1 << 20) + 32768;
  assert.equal(a.xalloc(16, 0, 0, 0, min, 0, M_NOWAIT), min);
  assert.equal(segs(a, VMEM_SPAN).length, 9);
  // Past the source's end nothing fits: every page is imported, and kept.
  assert.equal(a.xalloc(16, 0, 0, 0, (1 << 20) + (1 << 16), 0, M_NOWAIT), -1);
  assert.equal(s.size(VMEM_FREE), 0);
  assert.equal(a.imported, 1 << 16);
  s.check();
  a.check();
});

test("the limit refuses imports that would grow the arena past it, static spans counted", () => {
  const { a } = importPair();
  a.add(1 << 30, 4096);
  a.setLimit(3 * 4096);
  assert.equal(a.alloc(4096, M_NOWAIT), 1 << 30);
  assert.equal(a.alloc(4096, M_NOWAIT), 1 << 20);
  assert.equal(a.alloc(4096, M_NOWAIT), (1 << 20) + 4096);
  assert.equal(a.alloc(16, M_NOWAIT), -1);
  a.setLimit(0);
  assert.equal(a.alloc(16, M_NOWAIT), (1 << 20) + 8192);
  a.check();
});

test("reclaim runs after a failed import; the search is retried only if free space grew", () => {
  const a = VmemFreeBSD.create("a", 4096, 4096, 16);
  const held = a.alloc(4096, M_NOWAIT);
  const calls: number[] = [];
  a.setReclaim((arena, flags) => {
    assert.equal(arena, a);
    calls.push(flags);
    if (calls.length === 2) arena.free(held, 4096);
  });
  assert.equal(a.alloc(16, M_NOWAIT), -1);
  assert.equal(a.alloc(16, M_NOWAIT | M_FIRSTFIT), held);
  assert.deepEqual(calls, [M_NOWAIT, M_NOWAIT | M_FIRSTFIT]);
  a.setReclaim(null);
  assert.equal(a.alloc(4096, M_NOWAIT), -1);
  assert.equal(calls.length, 2);
  a.check();
});

test("custom import and release functions replace the source's alloc and free", () => {
  const s = VmemFreeBSD.create("s", 1 << 20, 1 << 16, 4096);
  const log: string[] = [];
  const a = VmemFreeBSD.create("a", 0, 0, 16, {
    source: s,
    importQuantum: 8192,
    importFn: (src, size, flags) => {
      log.push(`import ${size} ${flags}`);
      return src.alloc(size, flags);
    },
    releaseFn: (src, addr, size) => {
      log.push(`release ${addr} ${size}`);
      src.free(addr, size);
    },
  });
  assert.equal(a.alloc(16, M_NOWAIT | M_FIRSTFIT), 1 << 20);
  a.free(1 << 20, 16);
  assert.deepEqual(log, [`import 8192 ${M_NOWAIT | M_FIRSTFIT}`, `release ${1 << 20} 8192`]);
  // An import function must hand back a quantum-aligned span.
  const b = VmemFreeBSD.create("b", 0, 0, 16, { source: s, importFn: () => 8 });
  assert.throws(() => b.alloc(16, M_NOWAIT), (e) => errorCode(e) === "EINVAL");
  // Without a release function imported spans stay.
  const c = VmemFreeBSD.create("c", 0, 0, 16, { source: s, releaseFn: null });
  c.free(c.alloc(16, M_NOWAIT), 16);
  assert.equal(c.imported, 4096);
  s.check();
  a.check();
  c.check();
});

test("setImport refuses bad quanta, cycles, a new source while holding spans, overlaps", () => {
  const s = VmemFreeBSD.create("s", 1 << 20, 1 << 16, 4096);
  const t = VmemFreeBSD.create("t", 1 << 24, 1 << 16, 4096);
  const a = VmemFreeBSD.create("a", 0, 0, 16, { source: s });
  const big = VmemFreeBSD.create("big", 1 << 28, 1 << 16, 8192);
  refused("EINVAL", () => a.setImport(s, 0), a, s);
  refused("EINVAL", () => a.setImport(s, 24), a, s);
  refused("EINVAL", () => big.setImport(s, 8192), big, s);
  refused("EINVAL", () => s.setImport(a, 4096), a, s);
  refused("EINVAL", () => s.setImport(s, 4096), s);
  a.alloc(16, M_NOWAIT);
  refused("EBUSY", () => a.setImport(t, 4096), a, t);
  // Dropping the source keeps the spans (and the relation: no cycle through them).
  a.setImport(null, 0);
  refused("EINVAL", () => s.setImport(a, 4096), a, s);
  refused("EBUSY", () => a.setImport(t, 4096), a, t);
  a.setImport(s, 4096);
  // Static spans may not overlap spans of the source chain.
  const c = VmemFreeBSD.create("c", 1 << 24, 4096, 16);
  refused("EINVAL", () => c.setImport(t, 4096), c, t);
  refused("EINVAL", () => VmemFreeBSD.create("d", 1 << 24, 4096, 16, { source: t }), t);
  refused("EINVAL", () => a.add(1 << 20, 4096), a, s);
  refused("EINVAL", () => s.add((1 << 20) + (1 << 16) - 4096, 8192), a, s);
  s.add(1 << 21, 4096);
  a.check();
  s.check();
});

test("destroy is refused while anything is allocated or imports from the arena", () => {
  const { s, a } = importPair();
  const p = a.alloc(16, M_NOWAIT);
  refused("EBUSY", () => a.destroy(), a, s);
  refused("EBUSY", () => s.destroy(), a, s);
  a.free(p, 16);
  refused("EBUSY", () => s.destroy(), a, s);
  assert.equal(a.destroy(), 0);
  assert.equal(a.destroyed, true);
  assert.equal(s.destroy(), 0);
  for (const fn of [() => a.alloc(16, M_NOWAIT), () => a.free(p, 16), () => a.size(VMEM_FREE)]) {
    assert.throws(fn, (e) => errorCode(e) === "EINVAL");
  }
});

test("next-fit and contains are UNSUPPORTED", () => {
  const a = VmemFreeBSD.create("a", 4096, 4096, 16);
  refused("UNSUPPORTED", () => a.alloc(16, M_NOWAIT | M_NEXTFIT), a);
  refused("UNSUPPORTED", () => a.xalloc(16, 0, 0, 0, 0, 0, M_NOWAIT | M_NEXTFIT), a);
  refused("UNSUPPORTED", () => a.contains(4096, 16), a);
});

// ---- Bad input ----

const HOSTILE: unknown[] = [
  5n,
  "16",
  NaN,
  undefined,
  null,
  true,
  false,
  -16,
  1.5,
  Infinity,
  2 ** 53,
  {},
];

test("create refuses bad names, quanta, spans, options and sources", () => {
  const ok = VmemFreeBSD.create("ok", 4096, 4096, 16);
  const bad: [unknown, unknown, unknown, unknown, unknown][] = [
    [1, 0, 0, 16, {}],
    ["a", 0, 0, 0, {}],
    ["a", 0, 0, 24, {}],
    ["a", 8, 4096, 16, {}],
    ["a", 0, 24, 16, {}],
    ["a", 2 ** 53 - 4096, 8192, 4096, {}],
    ["a", 0, 0, 16, { qcacheMax: 24 }],
    ["a", 0, 0, 16, { importQuantum: 16 }],
    ["a", 0, 0, 16, { source: {} }],
    ["a", 0, 0, 32, { source: ok }],
    ["a", 0, 0, 16, { source: ok, importQuantum: 8 }],
    ["a", 0, 0, 16, { source: ok, importFn: 3 }],
    ["a", 0, 0, 16, { source: ok, releaseFn: "no" }],
    ["a", 0, 0, 16, null],
  ];
  for (const v of HOSTILE) {
    bad.push(["a", v, 4096, 16, {}], ["a", 0, v, 16, {}], ["a", 0, 0, v, {}]);
    if (v !== undefined && v !== null) bad.push(["a", 0, 0, 16, { qcacheMax: v }]);
  }
  for (const [name, base, size, quantum, opts] of bad) {
    assert.throws(
      // deno-lint-ignore no-explicit-any
      () => VmemFreeBSD.create(name as any, base as any, size as any, quantum as any, opts as any),
      (e) => errorCode(e) === "EINVAL",
      `create(${String(name)}, ${String(base)}, ${String(size)}, ${String(quantum)})`,
    );
  }
  ok.check();
  assert.deepEqual(segs(ok), [["span", 4096, 4096], ["free", 4096, 4096]]);
});

test("alloc and xalloc refuse what the seed panics on, changing nothing", () => {
  const s = VmemFreeBSD.create("s", 1 << 20, 1 << 16, 4096);
  const a = VmemFreeBSD.create("a", 4096, 4096, 16, { source: s });
  a.alloc(32, M_NOWAIT);
  // deno-lint-ignore no-explicit-any
  const A = a as any;
  for (const v of HOSTILE) {
    refused("EINVAL", () => A.alloc(v, M_NOWAIT), a, s);
    refused("EINVAL", () => A.alloc(16, v), a, s);
    for (let i = 0; i < 7; i++) {
      const args: unknown[] = [16, 0, 0, 0, 0, 0, M_NOWAIT];
      args[i] = v;
      refused("EINVAL", () => A.xalloc(...args), a, s);
    }
  }
  refused("EINVAL", () => a.alloc(0, M_NOWAIT), a, s);
  refused("EINVAL", () => a.alloc(16, M_NOWAIT | M_WAITOK), a, s);
  refused("EINVAL", () => a.alloc(16, M_NOWAIT | M_BESTFIT | M_FIRSTFIT), a, s);
  refused("EINVAL", () => a.alloc(16, M_NOWAIT | 0x4), a, s);
  const xbad = [
    [16, 24, 0, 0, 0, 0], // align not a multiple of the quantum
    [16, 48, 0, 0, 0, 0], // align not a power of two
    [16, 0, 0, 48, 0, 0], // nocross not a power of two
    [16, 0, 16, 0, 0, 0], // phase without align
    [16, 32, 32, 0, 0, 0], // phase not below align
    [40, 0, 0, 32, 0, 0], // nocross below the rounded size
    [32, 32, 16, 32, 0, 0], // [phase, phase + size) crosses nocross
    [17, 32, 16, 32, 0, 0], // so does the rounded size
    [16, 0, 0, 0, 8192, 8192], // minaddr not below maxaddr
  ];
  for (const x of xbad) {
    refused("EINVAL", () => a.xalloc(x[0]!, x[1]!, x[2]!, x[3]!, x[4]!, x[5]!, M_NOWAIT), a, s);
  }
  // Valid neighbours of those: align above nocross, the size within it at phase.
  assert.equal(a.xalloc(16, 32, 16, 16, 0, 0, M_NOWAIT), 4096 + 48);
  assert.equal(a.xalloc(16, 0, 0, 0, 8192, 8193, M_NOWAIT), -1);
});

test("free, add, size, walk and the setters refuse bad arguments, changing nothing", () => {
  const s = VmemFreeBSD.create("s", 1 << 20, 1 << 16, 4096);
  const a = VmemFreeBSD.create("a", 4096, 4096, 16, { source: s });
  const p = a.alloc(32, M_NOWAIT);
  // deno-lint-ignore no-explicit-any
  const A = a as any;
  for (const v of HOSTILE) {
    refused("EINVAL", () => A.free(v, 32), a, s);
    refused("EINVAL", () => A.xfree(p, v), a, s);
    refused("EINVAL", () => A.add(v, 4096), a, s);
    refused("EINVAL", () => A.add(1 << 24, v), a, s);
    refused("EINVAL", () => A.size(v), a, s);
    refused("EINVAL", () => A.setLimit(v), a, s);
    refused("EINVAL", () => A.setImport(s, v), a, s);
    if (v !== null) refused("EINVAL", () => A.setImport(v, 4096), a, s);
    refused("EINVAL", () => A.walk(v, () => {}), a, s);
    refused("EINVAL", () => A.roundupSize(v), a, s);
    if (v !== null) refused("EINVAL", () => A.setReclaim(v), a, s);
  }
  refused("EINVAL", () => A.walk(ALL, null), a, s);
  refused("BADFREE", () => a.free(p + 16, 16), a, s);
  refused("BADFREE", () => a.free(p, 48), a, s);
  refused("EINVAL", () => a.free(p, 0), a, s);
  refused("EINVAL", () => a.add(1 << 24, 0), a, s);
  refused("EINVAL", () => a.add(4096, 4096), a, s);
  refused("EINVAL", () => a.size(0), a, s);
  refused("EINVAL", () => a.size(VMEM_MAXFREE | VMEM_ALLOC), a, s);
  a.free(p, 17);
  a.check();
});

// ---- Sleeping requests ----

test("a sleeping request that would wait is refused with WOULDBLOCK and undone, imports too", () => {
  const { s, a } = importPair();
  assert.equal(a.alloc(16, M_NOWAIT), 1 << 20);
  const other = s.alloc(4096, M_NOWAIT);
  const before = [state(a), state(s)];
  // Imports every free page of the source, fits nowhere, then would wait in the source.
  assert.throws(
    () => a.xalloc(16, 0, 0, 0, 1 << 30, 0, M_WAITOK),
    (e) => errorCode(e) === "WOULDBLOCK",
  );
  assert.deepEqual([state(a), state(s)], before);
  // The same state decides the same way as before: the next import is the one after `other`.
  assert.equal(a.xalloc(4096, 4096, 0, 0, 0, 0, M_NOWAIT), other + 4096);
  refused("WOULDBLOCK", () => VmemFreeBSD.create("z", 0, 0, 16).alloc(16, M_WAITOK));
  s.check();
  a.check();
});

test("a sleeping request gives back what custom functions imported before it would wait", () => {
  const s = VmemFreeBSD.create("s", 1 << 20, 4 * 4096, 4096);
  const counted = countedImports();
  const a = VmemFreeBSD.create("a", 0, 0, 16, {
    source: s,
    importFn: counted.importFn,
    releaseFn: counted.releaseFn,
  });
  assert.throws(
    () => a.xalloc(16, 0, 0, 0, 1 << 30, 0, M_WAITOK),
    (e) => errorCode(e) === "WOULDBLOCK",
  );
  assert.equal(counted.live, 0);
  assert.deepEqual(segs(a), []);
  assert.equal(s.size(VMEM_ALLOC), 0);
  s.check();
  a.check();
});

test("a reclaim callback's changes stay when a sleeping request is refused", () => {
  const { s, a } = importPair();
  const held = a.xalloc(4096, 4096, 0, 0, 0, 0, M_NOWAIT);
  a.setLimit(3 * 4096 + 4096);
  let freed = false;
  a.setReclaim((arena) => {
    if (!freed) arena.xfree(held, 4096);
    freed = true;
  });
  // Imports once (the limit then refuses), the callback frees `held`, the
  // search fails again and the request would wait: the free is not undone.
  assert.throws(
    () => a.xalloc(16, 0, 0, 0, 1 << 30, 0, M_WAITOK),
    (e) => errorCode(e) === "WOULDBLOCK",
  );
  assert.equal(freed, true);
  assert.equal(a.size(VMEM_ALLOC), 0);
  a.check();
  s.check();
});

test("allocWait waits for a free, then goes on as best-fit", async () => {
  const a = VmemFreeBSD.create("a", 1000, 1000, 1);
  const blocks = [40, 1, 200, 1, 758].map((n) => [a.alloc(n, M_NOWAIT), n] as const);
  assert.equal(a.alloc(1, M_NOWAIT), -1);
  let got = -2;
  const p = a.allocWait(35, M_WAITOK | M_FIRSTFIT).then((addr) => (got = addr));
  await Promise.resolve();
  assert.equal(got, -2);
  // Both holes come free before the waiter runs. First-fit would take the
  // 200 (35 starts its search at list 32); after the wait it is best-fit.
  a.free(blocks[2]![0], 200);
  a.free(blocks[0]![0], 40);
  await p;
  assert.equal(got, 1000);
  a.check();
});

test("allocWait cancelled by a signal rejects with ECANCELED and leaves the arena untouched", async () => {
  const a = VmemFreeBSD.create("a", 4096, 4096, 16);
  a.alloc(4096, M_NOWAIT);
  const before = state(a);
  const ac = new AbortController();
  const p = a.xallocWait(16, 0, 0, 0, 0, 0, M_WAITOK, ac.signal);
  ac.abort();
  await assert.rejects(p, (e) => errorCode(e) === "ECANCELED");
  assert.deepEqual(state(a), before);
  assert.equal(await a.allocWait(16, M_NOWAIT), -1, "M_NOWAIT does not wait");
  // The waiting forms check their arguments as the others do.
  // deno-lint-ignore no-explicit-any
  const A = a as any;
  for (const v of HOSTILE) {
    await assert.rejects(A.allocWait(v, M_WAITOK), (e) => errorCode(e) === "EINVAL");
    await assert.rejects(
      A.xallocWait(16, v, 0, 0, 0, 0, M_WAITOK),
      (e) => errorCode(e) === "EINVAL",
    );
  }
  assert.deepEqual(state(a), before);
});

test("a request waiting in its source is woken by frees there and by wakeup()", async () => {
  const { s, a } = importPair();
  const all = s.alloc(1 << 16, M_NOWAIT);
  const p = a.allocWait(16, M_WAITOK);
  await Promise.resolve();
  s.free(all, 1 << 16);
  assert.equal(await p, 1 << 20);
  const b = VmemFreeBSD.create("b", 0, 0, 16);
  const q = b.allocWait(16, M_WAITOK);
  b.add(4096, 4096);
  assert.equal(await q, 4096);
  const c = VmemFreeBSD.create("c", 0, 0, 16);
  let n = 0;
  c.setReclaim(() => {
    if (++n === 2) c.add(8192, 16);
  });
  const r = c.allocWait(16, M_WAITOK);
  await Promise.resolve();
  c.wakeup();
  assert.equal(await r, 8192);
  const d = VmemFreeBSD.create("d", 0, 0, 16);
  const w = d.allocWait(16, M_WAITOK);
  d.destroy();
  await assert.rejects(w, (e) => errorCode(e) === "EINVAL");
});

// ---- Invariants ----

test("check() finds a broken invariant", () => {
  const a = VmemFreeBSD.create("a", 4096, 4096, 16);
  a.alloc(32, M_NOWAIT);
  a.check();
  // deno-lint-ignore no-explicit-any
  const A = a as any;
  const saved = A.ss.slice();
  const cases: ((x: Float64Array) => void)[] = [
    (x) => x[2 * 93 + 1] = 48, // an allocated size that does not tile
    (x) => x[2 * 92] = 4080, // a segment before its span
  ];
  for (const corrupt of cases) {
    A.ss = saved.slice();
    corrupt(A.ss);
    assert.throws(() => a.check(), (e) => errorCode(e) === "CORRUPT");
  }
  A.ss = saved;
  a.check();
  A.fm1 ^= 1;
  assert.throws(() => a.check(), (e) => errorCode(e) === "CORRUPT");
});

test("random requests over an import chain keep every invariant", () => {
  const r = new Mulberry32(7);
  const s = VmemFreeBSD.create("s", 1 << 24, 1 << 22, 4096);
  const a = VmemFreeBSD.create("a", 0, 0, 256, { source: s, importQuantum: 16384 });
  const b = VmemFreeBSD.create("b", 1 << 30, 1 << 16, 16, { source: a });
  a.setLimit(1 << 19);
  let reclaims = 0;
  a.setReclaim(() => reclaims++);
  const arenas = [s, a, b];
  const live: [VmemFreeBSD, number, number, boolean][] = [];
  for (let step = 0; step < 3000; step++) {
    const vm = arenas[r.below(3)]!;
    const k = r.below(10);
    const flags = [0, M_BESTFIT, M_FIRSTFIT][r.below(3)]! |
      (r.below(8) === 0 ? M_WAITOK : M_NOWAIT);
    try {
      if (k < 4) {
        const size = r.below(20 * vm.quantum) + 1;
        const addr = vm.alloc(size, flags);
        if (addr >= 0) live.push([vm, addr, size, false]);
      } else if (k < 6) {
        const size = r.below(8 * vm.quantum) + 1;
        const align = r.below(2) ? 0 : vm.quantum << r.below(6);
        const nocross = r.below(3) ? 0 : vm.quantum << (6 + r.below(6));
        const addr = vm.xalloc(size, align, 0, nocross, 0, 0, flags);
        if (addr >= 0) live.push([vm, addr, size, true]);
      } else if (live.length > 0) {
        const i = r.below(live.length);
        const [lv, addr, size, x] = live[i]!;
        if (x) lv.xfree(addr, size);
        else lv.free(addr, size);
        live.splice(i, 1);
      }
    } catch (e) {
      if (errorCode(e) !== "WOULDBLOCK" && errorCode(e) !== "EINVAL") throw e;
    }
    for (const c of arenas) c.check();
  }
  // Allocations never overlap.
  const spans = live.map(([vm, addr, size]) => [arenas.indexOf(vm), addr, vm.roundupSize(size)]);
  spans.sort((x, y) => x[0]! - y[0]! || x[1]! - y[1]!);
  for (let i = 1; i < spans.length; i++) {
    const p = spans[i - 1]!, q = spans[i]!;
    if (p[0] === q[0]) assert.ok(p[1]! + p[2]! <= q[1]!, `overlap at ${q[1]}`);
  }
  assert.ok(reclaims > 0);
  for (const [vm, addr, size, x] of live) x ? vm.xfree(addr, size) : vm.free(addr, size);
  for (const c of arenas) c.check();
  assert.equal(b.size(VMEM_ALLOC), 0);
  assert.equal(a.size(VMEM_ALLOC | VMEM_FREE), 0, "every import went back");
  assert.equal(s.size(VMEM_ALLOC), 0);
});

test("vmem_freebsd: sizes round up to the quantum on the 32-bit path and past it alike", () => {
  const r = new Mulberry32(11);
  for (const k of [0, 3, 9, 12, 20, 30, 31, 32, 33]) {
    const q = 2 ** k;
    const vm = VmemFreeBSD.create("round", q, q * 2 ** 16, q);
    for (let i = 0; i < 300; i++) {
      // Sizes on both sides of 2^31 - q, where the mask stops and the division takes over.
      const size = i % 3 === 0
        ? 1 + r.below(4 * q)
        : i % 3 === 1
        ? 2 ** 31 - q + r.below(2 * q + 1) - q / 2 || 1
        : 1 + r.below(2 ** 20);
      if (size < 1 || !Number.isInteger(size)) continue;
      const before = vm.size(VMEM_ALLOC);
      const addr = vm.alloc(size, M_NOWAIT | M_FIRSTFIT);
      if (addr < 0) continue;
      const rounded = Math.ceil(size / q) * q;
      assert.equal(vm.size(VMEM_ALLOC) - before, rounded, `quantum 2^${k}, size ${size}`);
      vm.check();
      // A size that rounds the same frees it; one that rounds otherwise is refused.
      if (rounded > q) {
        assert.throws(() => vm.free(addr, rounded - q), KernelError, `2^${k} ${size}`);
      }
      vm.free(addr, size);
      assert.equal(vm.size(VMEM_ALLOC), before);
    }
  }
});
