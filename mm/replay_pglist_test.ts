import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { KernelError } from "./errors.ts";
import { PglistReplayer } from "./replay_pglist.ts";
import { ReferencePglist } from "./pglist_reference.ts";
import type { PhysSegStrategy } from "./physseg.ts";
import { byCode } from "./_test_util.ts";

const GOLDEN = fileURLToPath(new URL("../testdata/golden/pglist/", import.meta.url));
const GOLDEN_BIGFIRST = fileURLToPath(
  new URL("../testdata/golden/pglist-bigfirst/", import.meta.url),
);

function ops(text: string): Record<string, unknown>[] {
  return text.split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => JSON.parse(l));
}

function run(apply: (op: Record<string, unknown>) => unknown, text: string): string[] {
  return ops(text).map((op) => {
    try {
      return JSON.stringify(apply(op));
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      return JSON.stringify({ error: e.code, message: e.message });
    }
  });
}

function traces(dir = GOLDEN, least = 7): string[] {
  assert.ok(existsSync(dir), `golden traces not found at ${dir}`);
  const names = readdirSync(dir).filter((f) => f.endsWith(".jsonl")).sort();
  assert.ok(names.length >= least, `only ${names.length} golden traces in ${dir}`);
  return names;
}

function replayGolden(dir: string, least: number, physseg: PhysSegStrategy): void {
  for (const name of traces(dir, least)) {
    const text = readFileSync(dir + name, "utf8");
    const want = readFileSync(dir + name.replace(/\.jsonl$/, ".expected"), "utf8")
      .split("\n").filter((l) => l !== "").map(byCode);
    const r = new PglistReplayer({ physseg });
    const got = run((op) => {
      const out = r.apply(op);
      r.uvm.check();
      return out;
    }, text).map(byCode);
    assert.equal(got.length, want.length, name);
    for (let i = 0; i < want.length; i++) assert.equal(got[i], want[i], `${name} line ${i + 1}`);
  }
}

test("replay_pglist: every golden trace gives the expected output, line for line", () => {
  replayGolden(GOLDEN, 7, "bsearch");
});

test("replay_pglist: every BIGFIRST golden trace gives the expected output, line for line", () => {
  replayGolden(GOLDEN_BIGFIRST, 4, "bigfirst");
});

test("replay_pglist: the BIGFIRST golden traces choose other pages under BSEARCH", () => {
  // What makes the order matter: replayed in address order, they differ.
  let differ = 0;
  for (const name of traces(GOLDEN_BIGFIRST, 4)) {
    const text = readFileSync(GOLDEN_BIGFIRST + name, "utf8");
    const want = readFileSync(GOLDEN_BIGFIRST + name.replace(/\.jsonl$/, ".expected"), "utf8")
      .split("\n").filter((l) => l !== "").map(byCode);
    const r = new PglistReplayer();
    if (run((op) => r.apply(op), text).map(byCode).join("\n") !== want.join("\n")) differ++;
  }
  assert.ok(differ >= 3, `only ${differ} traces depend on the order`);
});

/** The plain port driven by the same trace format, to keep the baseline honest. */
function referenceApply(physseg: PhysSegStrategy): (op: Record<string, unknown>) => unknown {
  let ref = new ReferencePglist(4096, 0, 0, physseg);
  const lists = new Map<number, number[]>();
  let next = 1;
  return (op) => {
    const n = (k: string) => op[k] as number;
    switch (op.op) {
      case "config":
        ref = new ReferencePglist(
          n("page_size"),
          n("reserve_pagedaemon"),
          n("reserve_kernel"),
          physseg,
        );
        return { ok: true };
      case "physload":
        ref.physload(n("start"), n("end"), n("avail_start"), n("avail_end"), n("freelist"));
        return { ok: true };
      case "claim":
      case "release": {
        const runs = op.pfns as [number, number][];
        for (const [p, c] of runs) {
          for (let q = p; q < p + c; q++) {
            if (ref.isFree(q) !== (op.op === "claim")) throw new KernelError("EBUSY", `page ${q}`);
          }
        }
        for (const [p, c] of runs) {
          for (let q = p; q < p + c; q++) op.op === "claim" ? ref.take(q) : ref.give(q);
        }
        return { ok: true };
      }
      case "alloc": {
        const pfns = ref.alloc(
          n("size"),
          n("low"),
          n("high"),
          n("alignment"),
          n("boundary"),
          n("nsegs"),
        );
        if (pfns === null) throw new KernelError("ENOMEM", "no pages");
        const k = next++;
        lists.set(k, pfns);
        const pages: [number, number][] = [];
        for (const p of pfns) {
          const last = pages[pages.length - 1];
          if (last !== undefined && last[0] + last[1] === p) last[1]++;
          else pages.push([p, 1]);
        }
        return { list: k, pages };
      }
      case "free":
        ref.freeList(lists.get(n("list"))!);
        lists.delete(n("list"));
        return { ok: true };
      case "state":
        return ref.state();
    }
    throw new KernelError("BADOP", String(op.op));
  };
}

test("replay_pglist: the page-by-page port also reproduces every golden trace", () => {
  for (const [dir, physseg] of [[GOLDEN, "bsearch"], [GOLDEN_BIGFIRST, "bigfirst"]] as const) {
    for (const name of traces(dir, 4)) {
      const text = readFileSync(dir + name, "utf8");
      const want = readFileSync(dir + name.replace(/\.jsonl$/, ".expected"), "utf8")
        .split("\n").filter((l) => l !== "").map(byCode);
      assert.deepEqual(run(referenceApply(physseg), text).map(byCode), want, name);
    }
  }
});

function codeOf(r: PglistReplayer, op: Record<string, unknown>): string {
  try {
    r.apply(op);
  } catch (e) {
    assert.ok(e instanceof KernelError);
    return e.code;
  }
  return "ok";
}

test("replay_pglist: refused lines name their problem and change nothing", () => {
  const r = new PglistReplayer();
  r.apply({ op: "physload", start: 0, end: 64, avail_start: 0, avail_end: 64, freelist: 0 });
  const list = r.apply({
    op: "alloc",
    size: 8192,
    low: 0,
    high: 2 ** 32,
    alignment: 0,
    boundary: 0,
    nsegs: 1,
    waitok: false,
  });
  assert.deepEqual(list, { list: 1, pages: [[0, 2]] });
  r.apply({ op: "claim", pfns: [[10, 2]] });
  const state = JSON.stringify(r.apply({ op: "state" }));
  const refused: [Record<string, unknown>, string][] = [
    [{ op: "config", page_size: 4096, reserve_pagedaemon: 0, reserve_kernel: 0 }, "EINVAL"],
    [{ op: "claim", pfns: [[9, 3]] }, "EBUSY"],
    [{ op: "claim", pfns: [[20, 2], [21, 1]] }, "EINVAL"],
    [{ op: "claim", pfns: [[100, 1]] }, "EINVAL"],
    [{ op: "claim", pfns: [[20, -1]] }, "EINVAL"],
    [{ op: "claim", pfns: "20" }, "EINVAL"],
    [{ op: "release", pfns: [[10, 3]] }, "BADFREE"],
    [{ op: "release", pfns: [[0, 1]] }, "BADFREE"],
    [{ op: "free", list: 2 }, "BADFREE"],
    [{ op: "free" }, "EINVAL"],
    [
      { op: "alloc", size: 0, low: 0, high: 1, alignment: 0, boundary: 0, nsegs: 1, waitok: false },
      "EINVAL",
    ],
    [
      { op: "alloc", size: 4096, low: 0, high: 2 ** 32, alignment: 0, boundary: 0, nsegs: 1 },
      "EINVAL",
    ],
    [{ op: "physload", start: 32, end: 70, avail_start: 32, avail_end: 70, freelist: 0 }, "EINVAL"],
    [{ op: "physload", start: 70, end: 80, avail_start: 70, avail_end: 80, freelist: 6 }, "EINVAL"],
    [{ op: "nonsense" }, "BADOP"],
  ];
  for (const [op, want] of refused) {
    assert.equal(codeOf(r, op), want, JSON.stringify(op));
    assert.equal(JSON.stringify(r.apply({ op: "state" })), state, JSON.stringify(op));
  }
  // An empty run names no page, wherever it stands, as in the reference.
  for (const op of ["claim", "release"]) {
    for (const pfns of [[[20, 0]], [[100, 0]], [[10, 0]], []]) {
      assert.deepEqual(r.apply({ op, pfns }), { ok: true }, `${op} ${JSON.stringify(pfns)}`);
      assert.equal(JSON.stringify(r.apply({ op: "state" })), state);
    }
  }
  assert.deepEqual(r.apply({ op: "claim", pfns: [[20, 4], [22, 0]] }), { ok: true });
  assert.deepEqual(r.apply({ op: "release", pfns: [[21, 0], [20, 4]] }), { ok: true });
  assert.equal(JSON.stringify(r.apply({ op: "state" })), state);
  assert.deepEqual(r.apply({ op: "release", pfns: [[10, 2]] }), { ok: true });
  assert.deepEqual(r.apply({ op: "free", list: 1 }), { ok: true });
  assert.deepEqual(r.apply({ op: "state" }), { free: [[0, 64]], hints: [2] });
  r.uvm.check();
});

test("replay_pglist: config sets the page size and reserves before the first physload", () => {
  const r = new PglistReplayer();
  assert.deepEqual(
    r.apply({ op: "config", page_size: 8192, reserve_pagedaemon: 1, reserve_kernel: 2 }),
    { ok: true },
  );
  assert.equal(
    codeOf(r, { op: "config", page_size: 3000, reserve_pagedaemon: 0, reserve_kernel: 0 }),
    "EINVAL",
  );
  r.apply({ op: "physload", start: 0, end: 8, avail_start: 0, avail_end: 8, freelist: 0 });
  const alloc = { op: "alloc", low: 0, high: 2 ** 32, alignment: 0, boundary: 0, waitok: false };
  assert.deepEqual(r.apply({ ...alloc, size: 16384, nsegs: 2 }), { list: 1, pages: [[0, 2]] });
  assert.deepEqual(r.apply({ ...alloc, size: 8192 * 3, nsegs: 3 }), { list: 2, pages: [[2, 3]] });
  // Three pages free: at the reserves (1 + 2), so a request fails at once.
  assert.equal(codeOf(r, { ...alloc, size: 8192, nsegs: 1 }), "ENOMEM");
  assert.deepEqual(r.apply({ op: "state" }), { free: [[5, 3]], hints: [5] });
});

test("replay_pglist: release gives back only claimed pages, not pages never free", () => {
  const r = new PglistReplayer();
  r.apply({ op: "physload", start: 0, end: 64, avail_start: 16, avail_end: 64, freelist: 0 });
  r.apply({ op: "claim", pfns: [[20, 4]] });
  const state = JSON.stringify(r.apply({ op: "state" }));
  assert.equal(codeOf(r, { op: "release", pfns: [[8, 1]] }), "BADFREE");
  assert.equal(codeOf(r, { op: "release", pfns: [[22, 4]] }), "BADFREE");
  assert.equal(JSON.stringify(r.apply({ op: "state" })), state);
  assert.deepEqual(r.apply({ op: "release", pfns: [[20, 4]] }), { ok: true });
  assert.equal(codeOf(r, { op: "release", pfns: [[20, 1]] }), "BADFREE");
  r.uvm.check();
});

test("replay_pglist: state merges free runs across adjacent segments", () => {
  const r = new PglistReplayer();
  r.apply({ op: "physload", start: 64, end: 128, avail_start: 64, avail_end: 128, freelist: 3 });
  r.apply({ op: "physload", start: 0, end: 64, avail_start: 10, avail_end: 64, freelist: 0 });
  assert.deepEqual(r.apply({ op: "state" }), { free: [[10, 118]], hints: [0, 0] });
});
