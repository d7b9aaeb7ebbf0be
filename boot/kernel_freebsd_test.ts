import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { createMachine } from "../machine/mod.ts";
import { Kernel, PAGE_SIZE } from "./kernel.ts";
import { run } from "./run.ts";
import { NO_LEAKS } from "./_test_util.ts";
import { parseBootArgs, UsageError } from "./options.ts";
import { WORKLOAD_TABLE } from "./workloads.ts";
import { VmemFreeBSDReplayer } from "../mm/replay_vmem_freebsd.ts";
import { replayLine } from "../mm/replayer.ts";
import { VmemFreeBSD } from "../mm/vmem_freebsd.ts";
import { Vmem } from "../mm/vmem.ts";
import { KernelError } from "../mm/errors.ts";

const MiB = 2 ** 20;

test("options: --vmem picks the heap arenas' flavor, illumos by default", () => {
  assert.equal(parseBootArgs([]).vmem, "illumos");
  assert.equal(parseBootArgs(["--vmem", "freebsd"]).vmem, "freebsd");
  assert.equal(parseBootArgs(["--vmem", "illumos"]).vmem, "illumos");
  for (const bad of [["--vmem", "netbsd"], ["--vmem", ""], ["--vmem"]]) {
    assert.throws(
      () => parseBootArgs(bad),
      (e) => e instanceof UsageError && /--vmem/.test(e.message),
    );
  }
});

for (const preset of ["isa", "pc", "big"] as const) {
  test(`kernel --vmem freebsd: the ${preset} preset boots on FreeBSD heap arenas, pid stays illumos`, () => {
    const lines: string[] = [];
    const k = new Kernel(createMachine({ preset }), { log: (l) => lines.push(l), vmem: "freebsd" });
    for (const a of [k.kmem.heap, k.kmem.kmemVa, k.kmem.kmem]) assert.ok(a instanceof VmemFreeBSD);
    assert.ok(k.pids instanceof Vmem);
    assert.ok(
      lines.includes(
        "arena kmem: FreeBSD vmem, quantum 16, imports from kmem_va, quantum caches up to 256",
      ),
    );
    assert.ok(
      lines.some((l) =>
        /^arena pid: .*next-fit \(illumos vmem: FreeBSD's has no next-fit\)$/.test(l)
      ),
    );
    k.check();
    assert.deepEqual(k.shutdown(), NO_LEAKS);
  });
}

test("kernel --vmem freebsd: kmem memory is page-backed; bad frees are refused; 0 means failure", () => {
  const k = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }), { vmem: "freebsd" });
  const va = k.kmem.alloc(3 * PAGE_SIZE + 100);
  assert.ok(va > 0);
  const data = new Uint8Array(3 * PAGE_SIZE + 100).map((_, i) => i % 251);
  k.pmap.write(va, data);
  const back = new Uint8Array(data.length);
  k.pmap.read(va, back);
  assert.deepEqual(back, data);
  const before = k.kmem.stats;
  assert.throws(() => k.kmem.free(va + 16, data.length), (e) => e instanceof KernelError);
  assert.deepEqual(k.kmem.stats, before);
  // More than the machine's memory: the FreeBSD arena's -1 is kmem_alloc's 0.
  assert.equal(k.kmem.alloc(128 * MiB), 0);
  assert.equal(k.kmem.stats.allocs, before.allocs);
  assert.equal(k.kmem.stats.pageShortages, before.pageShortages + 1);
  k.kmem.free(va, data.length);
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("kernel --vmem freebsd: a sleeping kmem_alloc completes when the page daemon reclaims", async () => {
  const k = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }), { vmem: "freebsd" });
  while (k.pagedaemon.cache.insert() >= 0);
  assert.equal(k.kmem.alloc(1 << 20), 0, "no page is free for a nosleep allocation");
  const va = await k.kmem.allocWait(1 << 20);
  assert.ok(va > 0);
  assert.ok(k.pagedaemon.stats.reclaimed >= 256);
  k.kmem.free(va, 1 << 20);
  k.check();
  assert.equal(k.shutdown().pages, 0);
});

test("kernel --vmem freebsd: a leak is reported and the arena holding it stays", () => {
  const k = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }), { vmem: "freebsd" });
  k.kmem.alloc(100);
  const l = k.shutdown();
  assert.equal(l.heapBytes, 112, "FreeBSD counts the rounded size");
  assert.ok(l.kvaBytes > 0 && l.pages > 0);
  assert.equal((k.kmem.kmem as VmemFreeBSD).destroyed, false);
});

test("kernel --vmem freebsd: every workload runs leak-free on the 16 MiB isa machine", async () => {
  const r = await run(parseBootArgs(["-m", "isa", "-n", "400", "--vmem", "freebsd"]));
  assert.deepEqual(r.problems, []);
  assert.equal(r.status, 0);
  assert.deepEqual(r.workloads.map((w) => w.name), Object.keys(WORKLOAD_TABLE));
  assert.deepEqual(r.summary.leaks, NO_LEAKS);
  assert.ok(r.summary.pagedaemon.reclaimed > 0);
});

/** Replays trace lines (comments skipped), error lines by code. */
function replayAll(lines: string[]): string[] {
  const r = new VmemFreeBSDReplayer();
  const out: string[] = [];
  for (const line of lines) {
    if (!line.startsWith("#")) {
      out.push(replayLine(line, r).replace(/^\{"error":"([^"]*)".*$/, '{"error":"$1"}'));
    }
  }
  return out;
}

test("kernel --vmem freebsd: a recorded trace replays as vmem-freebsd to the run's results", async () => {
  for (const w of ["heap", "ids", "pressure"]) {
    const r = await run(
      parseBootArgs([
        "--memory",
        "64M",
        "-w",
        w,
        "-n",
        "1500",
        "--vmem",
        "freebsd",
        "--record-vmem",
        "x",
      ]),
    );
    assert.equal(r.status, 0);
    const t = r.vmemTrace!;
    assert.match(
      t.lines[0]!,
      /^# heap arenas of FreeBSD's vmem: replay with mm\/replay.ts vmem-freebsd/,
    );
    assert.ok(!t.lines.some((l) => l.includes('"arena":"pid"')), "the pid arena is not recorded");
    if (w === "heap") assert.ok(t.results.length > 1500);
    assert.deepEqual(replayAll(t.lines), t.results, w);
  }
});

test("boot.ts --vmem freebsd --json prints the summary", () => {
  const root = new URL("..", import.meta.url).pathname;
  const args = [
    "-m",
    "isa",
    "-w",
    "heap",
    "-n",
    "300",
    "--devices",
    "none",
    "--json",
    "--vmem",
    "freebsd",
  ];
  const argv = "Deno" in globalThis ? ["run", "boot.ts", ...args] : ["boot.ts", ...args];
  const r = spawnSync(process.execPath, argv, { cwd: root, encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.status, 0);
  assert.deepEqual(out.summary.arenas.map((a: { name: string }) => a.name), [
    "heap",
    "kmem_va",
    "kmem",
    "pid",
  ]);
  assert.deepEqual(out.summary.leaks, NO_LEAKS);
});
