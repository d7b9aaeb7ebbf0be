import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { createMachine } from "../machine/mod.ts";
import { Kernel } from "./kernel.ts";
import { run, runJson } from "./run.ts";
import { parseBootArgs } from "./options.ts";
import { POLICIES } from "./boot_options.ts";
import { policyReplayer } from "../mm/replay_policy.ts";
import { VmemReplayer } from "../mm/replay_vmem.ts";
import { replayText } from "../mm/replayer.ts";
import { KernelError } from "../mm/errors.ts";
import { Kmem, type KmemPolicy } from "../mm/kmem.ts";
import { VM_BESTFIT, VM_NOSLEEP, Vmem } from "../mm/vmem.ts";
import { VmemTrace } from "./trace.ts";
import { checkSvg } from "../mm/svg_check_test_util.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

test("run: a recorded heap trace replays under its own policy and under every other", {
  timeout: 120_000,
}, async () => {
  const r = await run(
    parseBootArgs([
      "--memory",
      "64M",
      "-w",
      "heap",
      "-n",
      "8000",
      "--devices",
      "none",
      "--record-vmem",
      "x",
    ]),
  );
  assert.equal(r.status, 0, r.problems.join("\n"));
  const text = r.vmemText!;
  assert.match(
    text,
    /^\{"op":"alloc","arena":"kmem","size":\d+,"flags":\["nosleep"\],"id":\d+\}$/m,
  );
  assert.match(text, /^\{"op":"free","arena":"kmem","id":\d+,"size":\d+\}$/m);
  assert.doesNotMatch(text, /"op":"free"[^\n]*"addr"/, "every free names its allocation");
  const own: string[] = [];
  replayText(text, new VmemReplayer(), (l) => own.push(l));
  assert.deepEqual(own, r.vmemTrace!.results, "the addresses the run saw");
  const lines = text.split("\n").filter((l) => l !== "" && !l.startsWith("#")).length;
  for (const policy of POLICIES) {
    const out: string[] = [];
    replayText(text, policyReplayer(policy), (l) => out.push(l));
    assert.equal(out.length, lines, `${policy}: every line answered`);
    assert.deepEqual(out.filter((l) => l.startsWith('{"error"')), [], policy);
    assert.ok(!out.includes('{"addr":null}'), `${policy}: no allocation failed`);
  }
});

test("run: each policy runs the heap arenas leak-free, with figures at the peak and at rest", {
  timeout: 120_000,
}, async () => {
  const placed = new Map<string, string>();
  for (const policy of POLICIES) {
    const r = await run(
      parseBootArgs(
        `-m isa -w heap -n 1500 --devices none --policy ${policy} --record-vmem x`.split(" "),
      ),
    );
    assert.equal(r.status, 0, `${policy}: ${r.problems.join("; ")}`);
    assert.equal(r.policy, policy);
    const j = runJson(r) as { peaks: { workload: string; arenas: { name: string }[] }[] };
    assert.deepEqual(j.peaks.map((p) => p.workload), ["boot", "heap"]);
    for (const figures of [r.peaks[1]!.arenas, r.rest]) {
      assert.deepEqual(figures.map((a) => a.name), ["heap", "kmem_va", "kmem", "pid"]);
      for (const a of figures) {
        assert.ok(a.fragmentation >= 0 && a.fragmentation < 1, `${policy} ${a.name}`);
        assert.ok(a.largestFree <= a.freeBytes && a.freeBytes <= a.footprint);
        assert.equal(typeof a.freeSegments, "number");
      }
    }
    const kmem = r.peaks[1]!.arenas[2]!;
    assert.ok(kmem.inUse > 0 && kmem.footprint >= kmem.inUse + kmem.freeBytes);
    // The trace shows the policy of every heap allocation the kernel made.
    const words = [
      ...r.vmemText!.matchAll(/"arena":"(?:kmem|heap)","size":\d+,"flags":(\[[^\]]*\])/g),
    ]
      .map((m) => m[1]);
    assert.ok(words.length > 500);
    const want = policy === "instantfit" ? '["nosleep"]' : `["nosleep","${policy}"]`;
    assert.ok(words.every((w) => w === want), `${policy}: ${words[0]}`);
    placed.set(policy, r.vmemTrace!.results.join());
  }
  assert.equal(new Set(placed.values()).size, POLICIES.length, "each policy placed differently");
});

test("run: --sample adds the heap every N arena operations", { timeout: 120_000 }, async () => {
  const r = await run(
    parseBootArgs("-m isa -w heap -n 1000 --devices none --sample 100".split(" ")),
  );
  assert.equal(r.status, 0);
  assert.ok(r.samples.length >= 10, `${r.samples.length} samples`);
  r.samples.forEach((s, i) => {
    assert.deepEqual(Object.keys(s), [
      "op",
      "workload",
      "inUse",
      "footprint",
      "fragmentation",
      "freePages",
    ]);
    assert.equal(s.op % 100, 0);
    if (i > 0) assert.equal(s.op - r.samples[i - 1]!.op, 100);
    assert.ok(s.footprint >= s.inUse && s.freePages > 0);
  });
  assert.ok(r.samples.some((s) => s.inUse > 0 && s.workload === "heap"));
  assert.deepEqual((runJson(r) as { samples: unknown[] }).samples, r.samples);
  const none = await run(
    parseBootArgs(["-m", "isa", "-w", "heap", "-n", "100", "--devices", "none"]),
  );
  assert.equal("samples" in runJson(none), false);
});

test(
  "run: the picture shows every workload's peak, to scale and labelled",
  { timeout: 120_000 },
  async () => {
    const r = await run(
      parseBootArgs([
        "-m",
        "isa",
        "-n",
        "300",
        "--devices",
        "isa,nic",
        "--svg",
        "x",
        "--record-pglist",
        "y",
      ]),
    );
    assert.equal(r.status, 0, r.problems.join("; "));
    assert.match(r.pglistText!, /^\{"op":"config"/);
    checkSvg(r.svg!, [
      "isa machine, workload all, seed 1",
      "at the peak of workload heap",
      "at the peak of workload pressure",
      "at the peak of workload ids",
      "at the peak of workload dma",
      "physical memory: RAM up to 0x1000000 (16 MiB)",
      "arena kmem",
      "arena kmem_va",
      "arena heap",
      "arena pid",
      "page cache",
      "the heap over the run (kmem arena)",
      "fragmentation (right axis)",
    ]);
    assert.doesNotMatch(r.svg!, /after boot/);
    // Without a workload, the machine as it booted; the 4 GiB boundary drawn where RAM reaches it.
    const big = await run(
      parseBootArgs(["--memory", "5G", "-w", "none", "--devices", "none", "--svg", "x"]),
    );
    checkSvg(big.svg!, [
      "after boot",
      "4 GiB: FIRST4G below, DEFAULT above",
      "16 MiB: FIRST16 below",
    ]);
  },
);

test("trace: allocations are named in order; a free names its allocation, or its address when unseen", () => {
  const t = new VmemTrace();
  const a = Vmem.create("a", 0x1000, 0x10000, 0x1000);
  t.create(a, 0x1000, 0x10000);
  const x = a.alloc(0x1000, VM_NOSLEEP | VM_BESTFIT);
  t.alloc(a, 0x1000, ["nosleep", "bestfit"], x);
  t.alloc(a, 0x100000, ["nosleep"], 0);
  const y = a.alloc(0x2000, VM_NOSLEEP); // not recorded
  t.free(a, x, 0x1000);
  t.free(a, y, 0x2000);
  assert.deepEqual(t.lines.slice(1), [
    '{"op":"alloc","arena":"a","size":4096,"flags":["nosleep","bestfit"],"id":1}',
    '{"op":"alloc","arena":"a","size":1048576,"flags":["nosleep"],"id":2}',
    '{"op":"free","arena":"a","id":1,"size":4096}',
    `{"op":"free","arena":"a","addr":${y},"size":8192}`,
  ]);
  assert.deepEqual(t.results.slice(1, 3), [`{"addr":${x}}`, '{"addr":null}']);
});

test("run: a bad policy or sample is refused, naming it, before anything is built", async () => {
  const base = parseBootArgs(["-m", "isa", "-w", "none", "--devices", "none"]);
  for (const policy of ["worstfit", "toString", 1, 1n, null, true, ""]) {
    await assert.rejects(
      run({ ...base, policy: policy as "bestfit" }),
      (e) =>
        e instanceof KernelError && e.code === "EINVAL" && /^policy must be one of/.test(e.message),
      String(policy),
    );
  }
  for (const sample of [0, -1, 1.5, NaN, "10", 10n, null, true]) {
    await assert.rejects(
      run({ ...base, sample: sample as number }),
      (e) =>
        e instanceof KernelError && e.code === "EINVAL" &&
        /^sample must be an integer/.test(e.message),
      String(sample),
    );
  }
});

test("kmem: the heap's policy goes with every allocation; a bad policy is refused", () => {
  const k = new Kernel(createMachine({ preset: "isa" }), { policy: "nextfit" });
  const a = k.kmem.alloc(4096), b = k.kmem.alloc(4096);
  k.kmem.free(a, 4096);
  // Next-fit moves on from where it left off instead of taking the hole again.
  assert.ok(k.kmem.alloc(4096) > b);
  const bad = ["worstfit", "toString", VM_BESTFIT, 1, -1, NaN, "256", 256n, null, true];
  for (const policy of bad) {
    assert.throws(
      () => new Kmem(k.uvm, k.pmap, { policy: policy as KmemPolicy }),
      (e) => e instanceof KernelError && e.code === "EINVAL" && /kmem: policy/.test(e.message),
      String(policy),
    );
  }
  // FreeBSD's arenas have best-fit and first-fit only.
  for (const policy of ["instantfit", "nextfit"] as const) {
    assert.throws(
      () => new Kmem(k.uvm, k.pmap, { flavor: "freebsd", policy }),
      (e) =>
        e instanceof KernelError && e.code === "EINVAL" && /for freebsd arenas/.test(e.message),
    );
  }
  for (const flavor of ["netbsd", "", 1, null]) {
    assert.throws(
      () => new Kmem(k.uvm, k.pmap, { flavor: flavor as "illumos" }),
      (e) => e instanceof KernelError && e.code === "EINVAL" && /kmem: flavor/.test(e.message),
    );
  }
});

test("kmem: a FreeBSD heap under first-fit records its policy word and boots leak-free", () => {
  const t = new VmemTrace();
  const k = new Kernel(createMachine({ preset: "isa" }), {
    vmem: "freebsd",
    policy: "firstfit",
    vmemTrace: t,
  });
  const va = k.kmem.alloc(100);
  k.kmem.free(va, 100);
  assert.ok(t.lines.some((l) => l.includes('"flags":["nosleep","firstfit"]')));
  assert.deepEqual(Object.values(k.shutdown()).filter((n) => n !== 0), []);
});

/** Static imports of a TypeScript file: [specifier, type-only]. */
function importsOf(file: string): [string, boolean][] {
  const text = readFileSync(file, "utf8");
  const out: [string, boolean][] = [];
  for (const m of text.matchAll(/^(import|export)\s+(type\s+)?(?:[^;]*?\sfrom\s+)?"([^"]+)";/gms)) {
    out.push([m[3]!, m[2] !== undefined]);
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() && !["node_modules", "testdata", "docs", ".git"].includes(e.name)) {
      out.push(...sourceFiles(p));
    } else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

test("run: the library reaches no node: module, so it runs in a browser", () => {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const [spec, typeOnly] of importsOf(file)) {
      if (typeOnly) continue;
      assert.ok(!spec.startsWith("node:"), `${file.slice(root.length)} imports ${spec}`);
      if (spec.startsWith(".")) visit(normalize(join(dirname(file), spec)));
    }
  };
  visit(join(root, "boot/run.ts"));
  visit(join(root, "mm/replay_compare.ts"));
  visit(join(root, "mm/replay_picture.ts"));
  assert.ok(seen.has(join(root, "boot/svg.ts")) && seen.has(join(root, "boot/kernel.ts")));
});

test("imports: no file reaches itself through its imports, type imports included", () => {
  const edges = new Map<string, string[]>();
  for (const f of sourceFiles(root)) {
    edges.set(
      f,
      importsOf(f).filter(([s]) => s.startsWith(".")).map(([s]) => normalize(join(dirname(f), s))),
    );
  }
  assert.ok(edges.has(join(root, "boot/workloads.ts")) && edges.size > 100);
  for (const start of edges.keys()) {
    const seen = new Set<string>();
    const stack = [...edges.get(start)!];
    while (stack.length > 0) {
      const f = stack.pop()!;
      assert.notEqual(f, start, `${start.slice(root.length)} reaches itself through its imports`);
      if (seen.has(f)) continue;
      seen.add(f);
      stack.push(...(edges.get(f) ?? []));
    }
  }
});
