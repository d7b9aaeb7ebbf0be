import { test } from "node:test";
import assert from "node:assert/strict";
import { KernelError } from "./errors.ts";
import { compareTrace, comparisonJson, comparisonTable } from "./replay_compare.ts";
import {
  POLICY_WORDS,
  PolicyReplayer,
  policyReplayer,
  REPLAY_POLICIES,
  replayPolicy,
} from "./replay_policy.ts";
import { REPLAYERS } from "./replayer.ts";
import { VmemReplayer } from "./replay_vmem.ts";
import { Mulberry32 } from "./random.ts";
import { comparisonSvg } from "./replay_picture.ts";
import { checkSvg } from "./svg_check_test_util.ts";

const POLICIES = ["instantfit", "bestfit", "firstfit", "nextfit"];

function line(op: Record<string, unknown>): string {
  return JSON.stringify(op);
}

function einval(f: () => unknown, re: RegExp): void {
  assert.throws(f, (e) => {
    assert.ok(e instanceof KernelError, String(e));
    assert.equal(e.code, "EINVAL");
    assert.match(e.message, re);
    return true;
  });
}

test("policy: every registered policy replays with a registered kind and a policy word", () => {
  for (const [name, p] of Object.entries(REPLAY_POLICIES)) {
    assert.ok(p.kind in REPLAYERS, name);
    assert.ok(POLICY_WORDS.includes(p.word), name);
    assert.equal(replayPolicy(name), p);
  }
  for (const bad of ["", "best-fit", "toString", "__proto__", 1, null, undefined, 1n, true]) {
    einval(() => replayPolicy(bad), /unknown policy .* \(one of instantfit, bestfit/);
    einval(() => policyReplayer(bad as string), /unknown policy/);
  }
});

test("policy: the word replaces the policy of every allocation line, and only there", () => {
  const seen: Record<string, unknown>[] = [];
  const r = new PolicyReplayer({
    apply(op) {
      seen.push(op);
      return { ok: true };
    },
  }, "bestfit");
  r.apply({ op: "alloc", arena: "a", size: 1, flags: ["nosleep", "nextfit", "endalloc"] });
  r.apply({ op: "xalloc", arena: "a", size: 1, flags: ["sleep"] });
  r.apply({ op: "free", arena: "a", addr: 1, size: 1, flags: ["instantfit"] });
  r.apply({ op: "alloc", arena: "a", size: 1, flags: "nosleep" });
  assert.deepEqual(seen.map((o) => o.flags), [
    ["nosleep", "endalloc", "bestfit"],
    ["sleep", "bestfit"],
    ["instantfit"],
    "nosleep",
  ]);
});

const CREATE = {
  op: "create",
  arena: "a",
  base: 0x10000,
  size: 0x10000,
  quantum: 0x1000,
  qcache_max: 0,
  source: null,
  flags: [],
};

test("compare: figures at the peak, as the definitions say", () => {
  // 16 pages; allocate 4 x 2 pages, free the 2nd and 4th: the peak is after
  // the fourth allocation (8 pages in use), where 8 pages are free in one piece.
  const ops = [line(CREATE)];
  for (let id = 1; id <= 4; id++) {
    ops.push(line({ op: "alloc", arena: "a", size: 0x2000, flags: ["nosleep"], id }));
  }
  ops.push(line({ op: "free", arena: "a", id: 2 }));
  ops.push(line({ op: "free", arena: "a", id: 4 }));
  ops.push("# a comment", "");
  const c = compareTrace(ops.join("\n"), ["firstfit", "bestfit"], { repeat: 1 });
  assert.equal(c.ops, 7);
  for (const r of c.runs) {
    const { nsPerOp, ...rest } = r.figures;
    assert.ok(nsPerOp >= 0);
    assert.deepEqual(rest, {
      policy: r.figures.policy,
      peakInUse: 0x8000,
      peakFootprint: 0x10000,
      freeSegments: 1,
      largestFree: 0x8000,
      fragmentation: 0,
      failures: 0,
    });
    assert.equal(r.peakOp, 5);
    assert.equal(r.refusedCount, 0);
    // The series ends with the last operation: pages 2-3 free, and 6-15 in one piece.
    const last = r.series[r.series.length - 1]!;
    assert.deepEqual(last, {
      op: 7,
      inUse: 0x4000,
      footprint: 0x10000,
      fragmentation: 1 - 10 / 12,
    });
  }
  assert.deepEqual(Object.keys(JSON.parse(comparisonJson(c)).policies[0]), [
    "policy",
    "peakInUse",
    "peakFootprint",
    "freeSegments",
    "largestFree",
    "fragmentation",
    "failures",
    "nsPerOp",
  ]);
  const table = comparisonTable(c);
  assert.match(table[0]!, /^policy +peak in use +peak footprint/);
  assert.match(table[1]!, /^firstfit +32,768 +65,536 +1 +32,768 +0\.0000 +0 /);
});

test("compare: sources and identifier arenas are not measured; failures and refusals are counted", () => {
  const trace = [
    line({ ...CREATE, arena: "src" }),
    line({ ...CREATE, arena: "leaf", base: 0, size: 0, source: "src" }),
    line({ ...CREATE, arena: "ids", base: 1, size: 100, quantum: 1, flags: ["identifier"] }),
    line({ op: "alloc", arena: "ids", size: 50, flags: ["nosleep"], id: 1 }),
    line({ op: "alloc", arena: "src", size: 0x1000, flags: ["nosleep"], id: 2 }),
    line({ op: "alloc", arena: "leaf", size: 0x3000, flags: ["nosleep"], id: 3 }),
    line({ op: "alloc", arena: "leaf", size: 0x100000, flags: ["nosleep"], id: 4 }),
    line({ op: "free", arena: "leaf", id: 4 }),
    "not json",
  ].join("\n");
  const c = compareTrace(trace, ["instantfit"], { repeat: 1 });
  const r = c.runs[0]!;
  assert.deepEqual(r.peakArenas.map((a) => a.name), ["leaf"]);
  assert.equal(r.figures.peakInUse, 0x3000);
  assert.equal(r.figures.peakFootprint, 0x3000, "the leaf imported what it holds");
  assert.equal(r.figures.failures, 1);
  assert.equal(r.refusedCount, 2);
  assert.deepEqual(r.refused.map((x) => [x.line, x.code]), [[8, "BADFREE"], [9, "BADJSON"]]);
  // With only identifier arenas, they are what is measured.
  const ids = compareTrace([trace.split("\n")[2], trace.split("\n")[3]].join("\n"), ["nextfit"]);
  assert.equal(ids.runs[0]!.figures.peakInUse, 50);
  assert.equal(ids.runs[0]!.figures.peakFootprint, 100);
});

/** A random named trace over an importing arena pair; no allocation fails. */
function randomTrace(seed: number, steps: number): string {
  const rng = new Mulberry32(seed);
  const out = [
    line({ ...CREATE, arena: "src", base: 2 ** 32, size: 2 ** 30 }),
    line({ ...CREATE, arena: "a", base: 0, size: 0, quantum: 16, qcache_max: 64, source: "src" }),
  ];
  const live: number[] = [];
  let id = 0;
  for (let i = 0; i < steps; i++) {
    if (live.length === 0 || rng.below(100) < 55) {
      const size = 1 + rng.below(rng.below(5) === 0 ? 40000 : 500);
      out.push(line({ op: "alloc", arena: "a", size, flags: ["nosleep"], id: ++id }));
      live.push(id);
    } else {
      const i = rng.below(live.length);
      out.push(line({ op: "free", arena: "a", id: live[i] }));
      live[i] = live[live.length - 1]!;
      live.pop();
    }
  }
  return out.join("\n");
}

test("compare: with no failures, in use at the peak is the same under every policy", {
  timeout: 120_000,
}, () => {
  for (let seed = 1; seed <= 3; seed++) {
    const text = randomTrace(seed, 3000);
    // Every line is accepted under every policy, and the arenas stay sound.
    for (const p of POLICIES) {
      const r = policyReplayer(p) as PolicyReplayer;
      const inner = new VmemReplayer();
      const checked = new PolicyReplayer(inner, REPLAY_POLICIES[p]!.word);
      for (const l of text.split("\n")) {
        const op = JSON.parse(l);
        assert.deepEqual(checked.apply(op), r.apply(op));
        inner.check();
      }
    }
    const c = compareTrace(text, POLICIES, { points: 50, repeat: 1 });
    const peaks = c.runs.map((r) => r.figures.peakInUse);
    assert.ok(peaks[0]! > 0);
    for (const r of c.runs) {
      assert.equal(r.figures.failures, 0, r.figures.policy);
      assert.ok(r.figures.nsPerOp > 0, r.figures.policy);
      assert.equal(r.refusedCount, 0, r.figures.policy);
      assert.equal(r.figures.peakInUse, peaks[0], r.figures.policy);
      assert.ok(r.figures.peakFootprint >= r.figures.peakInUse, r.figures.policy);
      assert.ok(r.series.length >= 50 && r.series.length <= 52);
      for (const s of r.series) assert.ok(s.fragmentation >= 0 && s.fragmentation <= 1);
    }
    // The series' in use is the policy-independent figure too.
    for (const r of c.runs) {
      assert.deepEqual(r.series.map((s) => s.inUse), c.runs[0]!.series.map((s) => s.inUse));
    }
    checkSvg(comparisonSvg(c, `seed ${seed}`), ["instantfit", "nextfit", "arena a"]);
  }
});

test("compare: FreeBSD's policies replay the same trace on FreeBSD's arenas, timed as measured", () => {
  // The trace's arena asks for quantum caches, which FreeBSD's arenas here
  // do not have: its create line must replay without them, in the timed
  // replay as in the measured one (else every later line would be refused).
  const text = randomTrace(4, 2000);
  const c = compareTrace(text, ["bestfit", "freebsd-bestfit", "freebsd-firstfit"], {
    points: 20,
    repeat: 1,
  });
  for (const r of c.runs) {
    assert.equal(r.refusedCount, 0, r.figures.policy);
    assert.ok(r.figures.peakInUse > 0, r.figures.policy);
    if (r.figures.failures === 0 && c.runs[0]!.figures.failures === 0) {
      assert.equal(r.figures.peakInUse, c.runs[0]!.figures.peakInUse, r.figures.policy);
    }
  }
});

test("compare: bad policies and options are refused before anything is replayed", () => {
  const t = line(CREATE);
  einval(() => compareTrace(t, []), /non-empty list/);
  einval(() => compareTrace(t, "bestfit" as unknown as string[]), /non-empty list/);
  einval(() => compareTrace(t, ["bestfit", "best"]), /unknown policy "best"/);
  einval(() => compareTrace(t, ["bestfit", "bestfit"]), /named twice/);
  einval(() => compareTrace(t, [1 as unknown as string]), /unknown policy 1/);
  einval(() => compareTrace(1 as unknown as string, ["bestfit"]), /trace must be a string/);
  for (const bad of [0, -1, 1.5, NaN, "3", 3n, null, true]) {
    einval(
      () => compareTrace(t, ["bestfit"], { points: bad as number }),
      /points must be an integer/,
    );
    einval(
      () => compareTrace(t, ["bestfit"], { repeat: bad as number }),
      /repeat must be an integer/,
    );
  }
});
