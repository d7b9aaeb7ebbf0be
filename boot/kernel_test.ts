import { test } from "node:test";
import assert from "node:assert/strict";
import { createMachine, MemoryMap } from "../machine/mod.ts";
import { Kernel, KERNEL_IMAGE_BASE, KVA_BASE, PAGE_SIZE } from "./kernel.ts";
import { formatSummary, run } from "./run.ts";
import { parseBootArgs } from "./options.ts";
import { WORKLOAD_TABLE } from "./workloads.ts";
import { VmemReplayer } from "../mm/replay_vmem.ts";
import { PglistReplayer } from "../mm/replay_pglist.ts";
import { type Replayer, REPLAYERS, replayLine } from "../mm/replayer.ts";
import { KernelError } from "../mm/errors.ts";
import { CaptureDriver, DEVICE_MODELS, IsaDriver } from "../devices/mod.ts";
import { NO_LEAKS } from "./_test_util.ts";

const MiB = 2 ** 20;

for (const preset of ["isa", "pc", "big"] as const) {
  test(`kernel: the ${preset} preset boots, checks clean and shuts down with nothing leaked`, () => {
    const lines: string[] = [];
    const k = new Kernel(createMachine({ preset }), { log: (l) => lines.push(l) });
    k.check();
    assert.ok(lines.some((l) => l.startsWith("physload: segment 0")), "the log shows the physsegs");
    assert.ok(lines.some((l) => l.startsWith("kernel ready")));
    // The kernel image never starts free.
    assert.equal(k.uvm.isFree(KERNEL_IMAGE_BASE / PAGE_SIZE), false);
    assert.ok(k.uvm.isManaged(KERNEL_IMAGE_BASE / PAGE_SIZE));
    const s = k.summary();
    assert.equal(s.freePages, k.bootFree);
    assert.equal(s.freelists.reduce((a, f) => a + f.free, 0), s.freePages);
    if (preset === "big") {
      assert.ok(s.freelists.find((f) => f.name === "DEFAULT")!.free > 15_000_000);
    }
    if (preset === "isa") {
      assert.equal(s.freelists.find((f) => f.name === "FIRST16")!.free, s.freePages);
    }
    // The first heap allocation carves the kernel's whole virtual window
    // (128 GiB on big): the arenas must hold up.
    const va = k.kmem.alloc(100);
    k.check();
    k.kmem.free(va, 100);
    k.check();
    assert.deepEqual(k.shutdown(), NO_LEAKS);
  });
}

test("kernel: a 16 TiB guest boots, checks and shuts down touching little of the host", () => {
  const k = new Kernel(createMachine({ preset: "pc", ramSize: 16 * 2 ** 40 }));
  k.check();
  const s = k.summary();
  assert.ok(s.freePages > 2 ** 32 - 2 ** 20);
  assert.ok(s.machine.hostBytesTouched < 2 ** 26, `${s.machine.hostBytesTouched} bytes touched`);
  const va = k.kmem.alloc(1 << 20);
  k.pmap.fill(va, 1 << 20, 0x5a);
  k.kmem.free(va, 1 << 20);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
  k.check();
});

test("kernel: kmem_alloc hands out page-backed memory that reads back through the pmap", () => {
  const k = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }));
  const free = k.uvm.free;
  const va = k.kmem.alloc(3 * PAGE_SIZE + 100);
  assert.ok(va >= KVA_BASE);
  assert.ok(k.uvm.free < free, "the heap took physical pages");
  const data = new Uint8Array(3 * PAGE_SIZE + 100).map((_, i) => i % 251);
  k.pmap.write(va, data);
  // The bytes are in the machine's RAM at the addresses the pmap names.
  const pa = k.pmap.extract(va + PAGE_SIZE + 7);
  assert.equal(k.machine.ram.read8(pa), data[PAGE_SIZE + 7]);
  const back = new Uint8Array(data.length);
  k.pmap.read(va, back);
  assert.deepEqual(back, data);
  const z = k.kmem.zalloc(64);
  const zb = new Uint8Array(64).fill(1);
  k.pmap.read(z, zb);
  assert.ok(zb.every((b) => b === 0));
  k.kmem.free(va, data.length);
  k.kmem.free(z, 64);
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
  assert.equal(k.uvm.free, free);
});

test("kernel: a bad kmem_free is refused and changes nothing", () => {
  const k = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }));
  const va = k.kmem.alloc(1000);
  const before = k.kmem.stats;
  assert.throws(() => k.kmem.free(va, 999), (e) => e instanceof KernelError);
  assert.throws(() => k.kmem.free(va + 16, 1000), (e) => e instanceof KernelError);
  assert.deepEqual(k.kmem.stats, before);
  k.kmem.free(va, 1000);
  k.check();
});

test("kernel: a sleeping kmem_alloc completes when the page daemon reclaims cache pages", async () => {
  const k = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }));
  while (k.pagedaemon.cache.insert() >= 0);
  assert.equal(k.kmem.alloc(1 << 20), 0, "no page is free for a nosleep allocation");
  const va = await k.kmem.allocWait(1 << 20);
  assert.ok(va !== 0);
  assert.ok(k.pagedaemon.stats.reclaimed >= 256);
  k.kmem.free(va, 1 << 20);
  k.check();
  assert.equal(k.shutdown().pages, 0);
});

test("kernel: the aggressive contiguous path succeeds once pages are reclaimable", async () => {
  const k = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }));
  while (k.pagedaemon.cache.insert() >= 0);
  const req = [64 * PAGE_SIZE, 0, 2 ** 32, 64 * PAGE_SIZE, 0, 1] as const;
  assert.throws(() => k.allocPages(...req), (e) => e instanceof KernelError && e.code === "ENOMEM");
  const list = await k.allocPagesWait(...req);
  const runs = list.runs();
  assert.equal(runs.length, 1);
  assert.equal(runs[0]![1], 64);
  assert.equal(runs[0]![0] % 64, 0);
  k.freePages(list);
  assert.throws(() => k.freePages(list), (e) => e instanceof KernelError && e.code === "BADFREE");
  k.check();
  assert.equal(k.shutdown().pages, 0);
});

test("kernel: with nothing reclaimable a waiting contiguous request fails with ENOMEM", async () => {
  const k = new Kernel(createMachine({ preset: "pc", ramSize: 64 * MiB }));
  // Wire everything but the reserve in the heap: nothing the daemon can free.
  const held: number[] = [];
  for (let va; (va = k.kmem.alloc(1 << 20)) !== 0;) held.push(va);
  await assert.rejects(
    k.allocPagesWait(512 * PAGE_SIZE, 0, 2 ** 32, PAGE_SIZE, 0, 1),
    (e) => e instanceof KernelError && e.code === "ENOMEM",
  );
  for (const va of held) k.kmem.free(va, 1 << 20);
  k.check();
  assert.equal(k.shutdown().pages, 0);
});

for (const workload of ["heap", "ids", "pressure"] as const) {
  test(`kernel: workload ${workload} passes its checks and leaks nothing`, async () => {
    const r = await run(parseBootArgs(["--memory", "64M", "-w", workload, "--devices", "none"]));
    assert.deepEqual(r.problems, []);
    assert.equal(r.status, 0);
    assert.deepEqual(r.summary.leaks, NO_LEAKS);
    const report = r.workloads[0]!;
    assert.equal(report.name, workload);
    assert.deepEqual(report.errors, []);
    if (workload === "pressure") {
      assert.ok(report.counts.reclaimed! > 0);
      assert.ok(report.counts.heapWaits! > 0);
      assert.ok(
        report.counts.contigWaited! > 0,
        "some contiguous request needed the aggressive path",
      );
    }
  });
}

test("kernel: on the 16 MiB machine the heap workload backs off instead of running out", async () => {
  // Seed 2's walk wants more live buffers than 16 MiB holds.
  const r = await run(parseBootArgs(["-m", "isa", "-s", "2", "-w", "heap", "--devices", "none"]));
  assert.deepEqual(r.problems, []);
  const report = r.workloads[0]!;
  assert.deepEqual(report.errors, []);
  assert.equal(report.counts.failed, 0);
  assert.ok(report.counts.backoffs! > 0, "it came near the low-water mark");
  assert.deepEqual(r.summary.leaks, NO_LEAKS);
  // With room to spare it never does.
  const roomy = await run(parseBootArgs(["-s", "2", "-w", "heap", "--devices", "none"]));
  assert.equal(roomy.workloads[0]!.counts.backoffs, 0);
});

test("kernel: the pressure workload holds lists within what earlier workloads left", async () => {
  // FreeBSD's kmem keeps more than half of the 16 MiB machine in its spans
  // after the heap workload; the pressure workload must still finish.
  const r = await run(parseBootArgs(["-m", "isa", "--vmem", "freebsd", "-w", "all"]));
  assert.deepEqual(r.problems, []);
  assert.equal(r.status, 0);
  const pressure = r.workloads.find((w) => w.name === "pressure")!;
  assert.deepEqual(pressure.errors, []);
  assert.ok(pressure.counts.listsFreed! > 0, "it gave lists back to stay within reach");
  assert.deepEqual(r.summary.leaks, NO_LEAKS);
});

/** Replays trace lines; error lines are compared by their code alone, as replay.md says. */
function replayAll(lines: string[], replayer: Replayer): string[] {
  const out: string[] = [];
  for (const line of lines) if (!line.startsWith("#")) out.push(byCode(replayLine(line, replayer)));
  return out;
}

function byCode(line: string): string {
  return line.replace(/^\{"error":"([^"]*)".*$/, '{"error":"$1"}');
}

test("kernel: a recorded vmem trace replays to the results the run produced", async () => {
  const r = await run(
    parseBootArgs(["--memory", "64M", "-w", "heap", "-n", "3000", "--record-vmem", "x"]),
  );
  assert.equal(r.status, 0);
  const t = r.vmemTrace!;
  assert.ok(t.results.length > 3000);
  assert.deepEqual(replayAll(t.lines, new VmemReplayer()), t.results);
  const ids = await run(
    parseBootArgs(["--memory", "64M", "-w", "ids", "-n", "3000", "--record-vmem", "x"]),
  );
  assert.deepEqual(replayAll(ids.vmemTrace!.lines, new VmemReplayer()), ids.vmemTrace!.results);
});

test("kernel: a recorded pglist trace replays to the pages and hints the run produced", async () => {
  for (const w of ["heap", "pressure"]) {
    const r = await run(
      parseBootArgs(["--memory", "64M", "-w", w, "-n", "40", "--record-pglist", "x"]),
    );
    assert.equal(r.status, 0);
    const t = r.pglistTrace!;
    assert.ok(t.lines.some((l) => l.includes('"op":"state"')));
    assert.deepEqual(
      replayAll(t.lines, new PglistReplayer()),
      t.results.map(byCode),
      `workload ${w}`,
    );
    if (w === "pressure") {
      // Searches that failed and pages taken one at a time are in the trace.
      assert.ok(t.results.some((r) => r.startsWith('{"error":"ENOMEM"')));
      assert.ok(t.lines.some((l) => l.includes('"op":"claim"')));
      assert.ok(t.lines.some((l) => l.includes('"op":"release"')));
    }
  }
});

test("kernel: physseg bigfirst searches the small segments first and replays as pglist-bigfirst", async () => {
  const memmap = new MemoryMap([
    { base: 0, size: 4096, type: "reserved", name: "vectors" },
    { base: 4096, size: 636 * 1024, type: "ram", name: "conventional memory" },
    { base: MiB, size: 11 * MiB, type: "ram", name: "extended memory" },
    { base: 13 * MiB, size: MiB, type: "ram", name: "a small island" },
    { base: 16 * MiB, size: 48 * MiB, type: "ram", name: "the rest" },
  ]);
  const got: Record<string, number[][]> = {};
  for (const physseg of ["bsearch", "bigfirst"] as const) {
    const lines: string[] = [];
    const k = new Kernel(createMachine({ memmap }), { physseg, log: (l) => lines.push(l) });
    assert.equal(lines.some((l) => l.startsWith("physseg: BIGFIRST")), physseg === "bigfirst");
    const list = k.allocPages(200 * PAGE_SIZE, 0, 16 * MiB, 0, 0, 1);
    got[physseg] = list.runs();
    k.freePages(list);
    k.check();
    assert.deepEqual(k.shutdown(), NO_LEAKS);
  }
  // Below 16 MiB: frames [1, 160), [256, 3072) (free from 512) and [3328, 3584).
  assert.deepEqual(got.bsearch, [[512, 200]]);
  assert.deepEqual(got.bigfirst, [[3328, 200]]);
  const r = await run(
    parseBootArgs([
      "--memory",
      "64M",
      "--physseg",
      "bigfirst",
      "-w",
      "pressure",
      "-n",
      "30",
      "--record-pglist",
      "x",
    ]),
  );
  assert.equal(r.status, 0, r.problems.join("; "));
  const t = r.pglistTrace!;
  const replayer = REPLAYERS["pglist-bigfirst"]!();
  assert.deepEqual(replayAll(t.lines, replayer), t.results.map(byCode));
});

test("kernel: the devices stage attaches a driver per device and logs its DMA constraints", () => {
  const m = createMachine({ preset: "pc", ramSize: 64 * MiB });
  for (const name of ["isa", "nic", "nvme", "dma30"] as const) DEVICE_MODELS[name](m);
  const lines: string[] = [];
  const k = new Kernel(m, { log: (l) => lines.push(l) });
  assert.deepEqual(k.drivers.map((d) => d.type), ["isadma", "nic", "nvme", "dma30"]);
  for (const d of k.drivers) {
    assert.ok(lines.includes(`  ${d.name} dma: ${d.tag.describe()}`), `${d.name}'s tag is logged`);
    assert.equal(d.ignoreTags, false);
  }
  assert.ok(lines.some((l) => /^device isa0 \(isadma\) at 0x[0-9a-f]+ irq 0: isa driver$/.test(l)));
  assert.ok(
    lines.some((l) =>
      /^bus_dma: bounce pool of 64 pages at 0x[0-9a-f]+, 17 reserved by 1 tag$/.test(l)
    ),
  );
  // Drivers took DMA memory after bootFree was counted.
  assert.ok(k.uvm.free < k.bootFree);
  assert.equal(k.summary().devices.length, 4);
  k.check();
});

test("kernel: shutdown detaches the drivers first, so DMA memory they still hold comes back", () => {
  const m = createMachine({ preset: "pc", ramSize: 64 * MiB });
  for (const name of ["isa", "nic", "nvme", "dma30"] as const) DEVICE_MODELS[name](m);
  const k = new Kernel(m);
  const isa = k.drivers.find((d) => d instanceof IsaDriver) as IsaDriver;
  const cap = k.drivers.find((d) => d instanceof CaptureDriver) as CaptureDriver;
  isa.allocBuffer(20000);
  cap.allocFrame(100, 100);
  assert.ok(k.busDma.bouncePool.reserved > 0);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
  assert.ok(k.drivers.every((d) => d.detached));
  assert.equal(k.busDma.liveMemory, 0);
  assert.deepEqual(k.busDma.liveTags, []);
  assert.equal(k.uvm.free, k.bootFree);
  k.check();
});

test("kernel: a driver that cannot attach is logged and reported, and the rest attach", async () => {
  // A bounce pool of 4 pages has no room for the ISA channel's 17-page reservation.
  const r = await run(
    parseBootArgs(["-w", "none", "--devices", "isa,nvme", "--bounce-pages", "4"]),
  );
  assert.equal(r.status, 1);
  assert.deepEqual(r.kernel.drivers.map((d) => d.name), ["nvme0"]);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!, /^isa0: attach failed: tag isa0: no room for a 17-page bounce/);
  assert.deepEqual(r.summary.leaks, NO_LEAKS, "the failed attach gave back what it took");
});

test("kernel: the default run attaches every device and runs the dma workload with the others", async () => {
  const r = await run(parseBootArgs(["--memory", "64M", "-n", "100"]));
  assert.deepEqual(r.problems, []);
  assert.equal(r.status, 0);
  assert.deepEqual(r.workloads.map((w) => w.name), ["heap", "ids", "pressure", "dma"]);
  const lines = formatSummary(r);
  for (const name of ["isa0", "nic0", "nvme0", "cap0"]) {
    assert.ok(
      lines.some((l) =>
        new RegExp(
          `^  device ${name} +transfers [1-9]\\d*, bytes \\d+, bounced bytes \\d+, faults 0$`,
        )
          .test(l)
      ),
      `a summary line for ${name}`,
    );
  }
  const json = JSON.parse(JSON.stringify(r.summary));
  assert.equal(json.devices.length, 4);
  assert.ok(json.busDma.loads > 0);
  assert.equal(lines.at(-1), "ok");
});

test("kernel: --ignore-tags passes when every breach was caught, and says how many", async () => {
  const r = await run(parseBootArgs(["--memory", "64M", "-w", "dma", "-n", "80", "--ignore-tags"]));
  assert.deepEqual(r.problems, []);
  assert.equal(r.status, 0);
  const faults = r.summary.devices.reduce((a, d) => a + d.faults, 0);
  assert.ok(faults > 0);
  for (const d of r.summary.devices) {
    assert.equal(d.caught, d.breaches, d.name);
    assert.equal(d.faults, d.caught, `${d.name}: every fault caught a breach`);
    assert.equal(d.mismatches, 0);
  }
  const lines = formatSummary(r);
  assert.ok(
    lines.some((l) => /^ {2}device isa0 .* faults (\d+) \(\1 of \1 breaches caught\)$/.test(l)),
  );
  assert.equal(lines.at(-1), "ok");
});

test("kernel: with tags ignored a breach no fault caught fails the run", async () => {
  const m = createMachine({ preset: "pc", ramSize: 64 * MiB });
  DEVICE_MODELS.isa(m);
  const k = new Kernel(m, { ignoreTags: true });
  const isa = k.drivers[0] as IsaDriver;
  // A port that checks nothing: the device reaches past 16 MiB, as a buggy
  // model (or a wrapping 8237) would.
  const port = m.devices[0]!.port;
  port.write = (pa, src, o, n) => {
    m.ram.write(pa, src, o, n);
    return true;
  };
  const va = k.kmem.alloc(100);
  assert.ok(k.pmap.extract(va) >= 16 * MiB);
  assert.equal(await isa.transfer("fill", va, 100, 7), "ok");
  assert.deepEqual([isa.stats().breaches, isa.stats().caught], [1, 0]);
  assert.deepEqual(k.dmaProblems(), [
    "isa0: 1 transfers beyond the device's limits went unnoticed",
  ]);
  k.kmem.free(va, 100);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("kernel: every workload runs on the 16 MiB isa machine, where the daemon must work hardest", async () => {
  const r = await run(parseBootArgs(["-m", "isa", "-n", "400"]));
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.workloads.map((w) => w.name), Object.keys(WORKLOAD_TABLE));
  assert.ok(r.summary.pagedaemon.reclaimed > 0);
  assert.ok(r.summary.pagedaemon.freemin >= 32, "uvmpd_tune's floor of 128 KiB");
  // What the ordinary checks took on trust holds too.
  r.kernel.check(true);
});
