import { test } from "node:test";
import assert from "node:assert/strict";
import { KernelError } from "./errors.ts";
import { VmemReplayer } from "./replay_vmem.ts";
import { NamedAllocations } from "./replay_named.ts";
import { Mulberry32 } from "./random.ts";

type Op = Record<string, unknown>;

const CREATE = {
  op: "create",
  arena: "a",
  base: 4096,
  size: 1 << 20,
  quantum: 16,
  qcache_max: 64,
  source: null,
  flags: [],
};
const WALK = { op: "walk", arena: "a", types: ["span", "alloc", "free"] };

/** Applies `op`; a refusal comes back as its code. */
function apply(r: { apply(op: Op): unknown }, op: Op): unknown {
  try {
    return r.apply(op);
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    return e.code;
  }
}

test("named: a free by id gives back what that allocation returned, with its size", () => {
  const r = new VmemReplayer();
  r.apply(CREATE);
  const a = r.apply({ op: "alloc", arena: "a", size: 100, flags: ["nosleep"], id: 7 });
  const b = r.apply({ op: "alloc", arena: "a", size: 3000, flags: ["nosleep"], id: 8 });
  assert.deepEqual(a, { addr: 4096 });
  assert.deepEqual(b, { addr: 4096 + 112 });
  assert.deepEqual(r.apply({ op: "free", arena: "a", id: 8 }), { ok: true });
  assert.deepEqual(r.apply({ op: "size", arena: "a", types: ["alloc"] }), { size: 100 });
  // An xalloc'd allocation freed by id through xfree.
  const x = r.apply({
    op: "xalloc",
    arena: "a",
    size: 512,
    align: 4096,
    phase: 0,
    nocross: 0,
    minaddr: 0,
    maxaddr: 0,
    flags: ["nosleep"],
    id: 9,
  }) as { addr: number };
  assert.equal(x.addr % 4096, 0);
  assert.deepEqual(r.apply({ op: "xfree", arena: "a", id: 9, size: 512 }), { ok: true });
  assert.deepEqual(r.apply({ op: "free", arena: "a", id: 7 }), { ok: true });
  assert.deepEqual(r.apply({ op: "destroy", arena: "a" }), { ok: true, leaked: 0 });
});

test("named: a free naming an id that is not live is BADFREE and changes nothing", () => {
  const r = new VmemReplayer();
  r.apply(CREATE);
  r.apply({ op: "alloc", arena: "a", size: 100, flags: ["nosleep"], id: 1 });
  r.apply({ op: "free", arena: "a", id: 1 });
  // A failed allocation names nothing either.
  assert.deepEqual(r.apply({ op: "alloc", arena: "a", size: 1 << 21, flags: ["nosleep"], id: 2 }), {
    addr: null,
  });
  r.apply({ op: "alloc", arena: "a", size: 200, flags: ["nosleep"], id: 3 });
  const before = JSON.stringify(r.apply(WALK));
  for (const id of [1, 2, 4]) {
    assert.equal(apply(r, { op: "free", arena: "a", id }), "BADFREE", `id ${id}`);
  }
  // Freed by address, an allocation's name ends with it: the address handed
  // out again does not answer to the old name.
  const addr3 = 4096;
  r.apply({ op: "free", arena: "a", addr: addr3, size: 200 });
  r.apply({ op: "alloc", arena: "a", size: 200, flags: ["nosleep"], id: 5 });
  assert.equal(apply(r, { op: "free", arena: "a", id: 3 }), "BADFREE");
  assert.equal(apply(r, { op: "free", arena: "b", id: 5 }), "BADFREE", "another arena's name");
  assert.equal(JSON.stringify(r.apply(WALK)), before);
  r.check();
});

test("named: a destroyed arena's names end with it", () => {
  const r = new VmemReplayer();
  r.apply(CREATE);
  r.apply({ op: "alloc", arena: "a", size: 100, flags: ["nosleep"], id: 1 });
  r.apply({ op: "destroy", arena: "a" });
  r.apply(CREATE);
  r.apply({ op: "alloc", arena: "a", size: 100, flags: ["nosleep"] });
  assert.equal(apply(r, { op: "free", arena: "a", id: 1 }), "BADFREE");
  // The id may name a new allocation now, and frees it.
  const again = r.apply({ op: "alloc", arena: "a", size: 16, flags: ["nosleep"], id: 1 });
  assert.equal(typeof (again as { addr: unknown }).addr, "number");
  assert.deepEqual(r.apply({ op: "free", arena: "a", id: 1 }), { ok: true });
  assert.equal(apply(r, { op: "free", arena: "a", id: 1 }), "BADFREE");
  r.check();
});

test("named: bad ids are EINVAL naming the value, and change nothing", () => {
  const r = new VmemReplayer();
  r.apply(CREATE);
  r.apply({ op: "alloc", arena: "a", size: 100, flags: ["nosleep"], id: 1 });
  const before = JSON.stringify(r.apply(WALK));
  for (const id of ["1", -1, 1.5, NaN, 2 ** 53, null, true, undefined, 1n, [1], {}]) {
    for (const op of ["alloc", "free"]) {
      const line = op === "alloc"
        ? { op, arena: "a", size: 16, flags: ["nosleep"], id }
        : { op, arena: "a", id };
      assert.throws(() => r.apply(line), (e) => {
        assert.ok(e instanceof KernelError);
        assert.equal(e.code, "EINVAL");
        assert.match(e.message, /"id" must be an integer/);
        return true;
      }, `${op} with id ${String(id)}`);
    }
  }
  // A live id named again, or a free giving both an address and an id.
  assert.equal(
    apply(r, { op: "alloc", arena: "a", size: 16, flags: ["nosleep"], id: 1 }),
    "EINVAL",
  );
  assert.equal(apply(r, { op: "free", arena: "a", id: 1, addr: 4096, size: 100 }), "EINVAL");
  // A size given with the id is the allocator's to judge, as for a free by address.
  assert.equal(apply(r, { op: "free", arena: "a", id: 1, size: 99 }), "BADFREE");
  assert.equal(JSON.stringify(r.apply(WALK)), before);
  r.check();
});

test("named: random traces by id replay as the same traces by address", () => {
  for (let seed = 1; seed <= 6; seed++) {
    const rng = new Mulberry32(seed);
    const named = new VmemReplayer();
    const plain = new VmemReplayer();
    named.apply(CREATE);
    plain.apply(CREATE);
    const live: { id: number; addr: number; size: number }[] = [];
    let nextId = 1;
    for (let step = 0; step < 1500; step++) {
      if (live.length === 0 || rng.below(100) < 55) {
        const size = 1 + rng.below(rng.below(4) === 0 ? 20000 : 100);
        const policy = ["instantfit", "bestfit", "firstfit", "nextfit"][rng.below(4)]!;
        const op = { op: "alloc", arena: "a", size, flags: ["nosleep", policy] };
        const id = nextId++;
        const got = named.apply({ ...op, id }) as { addr: number | null };
        assert.deepEqual(plain.apply(op), got);
        if (got.addr !== null) live.push({ id, addr: got.addr, size });
      } else {
        const i = rng.below(live.length);
        const { id, addr, size } = live[i]!;
        live[i] = live[live.length - 1]!;
        live.pop();
        // Half the frees by id, half by address: both end the name.
        const out = rng.below(2) === 0
          ? named.apply({ op: "free", arena: "a", id })
          : named.apply({ op: "free", arena: "a", addr, size });
        assert.deepEqual(out, plain.apply({ op: "free", arena: "a", addr, size }));
        assert.equal(apply(named, { op: "free", arena: "a", id }), "BADFREE");
      }
      named.check();
      plain.check();
    }
    assert.deepEqual(named.apply(WALK), plain.apply(WALK));
  }
});

test("named: the table sits in front of any replayer of the format", () => {
  const seen: Op[] = [];
  const r = new NamedAllocations({
    apply(op) {
      seen.push(op);
      return op.op === "alloc" ? { addr: 4096 * seen.length } : { ok: true };
    },
  });
  r.apply({ op: "alloc", arena: "x", size: 10, flags: [], id: 3 });
  assert.equal(r.liveIds, 1);
  r.apply({ op: "free", arena: "x", id: 3 });
  assert.deepEqual(seen[1], { op: "free", arena: "x", addr: 4096, size: 10 });
  assert.equal(r.liveIds, 0);
});
