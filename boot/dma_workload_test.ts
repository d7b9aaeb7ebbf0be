import { test } from "node:test";
import assert from "node:assert/strict";
import { run, type RunResult } from "./run.ts";
import { parseBootArgs } from "./options.ts";
import { createMachine } from "../machine/mod.ts";
import { Kernel } from "./kernel.ts";
import { dmaWorkload } from "./dma_workload.ts";
import { NvmeModel } from "../devices/mod.ts";
import { NO_LEAKS } from "./_test_util.ts";

function dma(args: string[]): Promise<RunResult> {
  return run(parseBootArgs(["-w", "dma", "-n", "300", ...args]));
}

function device(r: RunResult, name: string) {
  const d = r.summary.devices.find((x) => x.name === name);
  assert.ok(d !== undefined, `device ${name} in the summary`);
  return d;
}

test("dma workload: every device moves checked data with no fault on a 64 MiB pc", async () => {
  const r = await dma(["--memory", "64M"]);
  assert.deepEqual(r.problems, []);
  assert.equal(r.status, 0);
  assert.deepEqual(r.summary.leaks, NO_LEAKS);
  const w = r.workloads[0]!;
  assert.equal(w.name, "dma");
  assert.deepEqual(w.errors, []);
  assert.equal(w.counts.devices, 4);
  for (const k of ["isaPlays", "isaRecords", "nicFrames", "nvmeWrites", "nvmeReads", "captures"]) {
    assert.ok(w.counts[k]! > 0, `${k} > 0`);
  }
  assert.equal(w.counts.faults ?? 0, 0);
  assert.equal(w.counts.nicEfbig ?? 0, w.counts.nicOversized ?? 0, "oversized frames: EFBIG");
  for (const name of ["isa0", "nic0", "nvme0", "cap0"]) {
    const d = device(r, name);
    assert.ok(d.transfers > 0 && d.bytes > 0, `${name} moved data`);
    assert.equal(d.faults + d.mismatches + d.errors + d.breaches, 0, name);
  }
  // Kernel buffers sit above 16 MiB: ISA transfers bounce; nothing else needs to.
  assert.ok(device(r, "isa0").bouncedBytes > 0);
  assert.equal(device(r, "nic0").bouncedBytes, 0);
  assert.equal(device(r, "nvme0").bouncedBytes, 0);
  assert.equal(device(r, "cap0").bouncedBytes, 0);
  for (const d of r.kernel.machine.devices) assert.equal(d.port.faults, 0);
  assert.ok(r.kernel.machine.clock.ran > 0, "the NIC and NVMe completed on the clock");
});

test("dma workload: on a 6 GiB pc NIC buffers above 4 GiB bounce and NVMe buffers do not", async () => {
  const r = await dma(["--memory", "6G"]);
  assert.deepEqual(r.problems, []);
  assert.equal(r.status, 0);
  assert.deepEqual(r.summary.leaks, NO_LEAKS);
  const nic = device(r, "nic0"), nvme = device(r, "nvme0");
  // Every frame sent bounces whole (its pages are above 4 GiB); received frames land in DMA memory.
  assert.equal(nic.bouncedBytes, nic.bytes / 2);
  assert.ok(nvme.bytes > 0);
  assert.equal(nvme.bouncedBytes, 0);
  assert.ok(device(r, "isa0").bouncedBytes > 0);
  assert.equal(device(r, "cap0").bouncedBytes, 0);
  assert.deepEqual(
    r.summary.busDma.pool.tags.map((t) => [t.tag, t.pages]),
    [["isa0", 17], ["nic0", 9]],
  );
  assert.ok(
    r.kernel.machine.ram.touchedBytes() < 256 * 2 ** 20,
    "the host touched little of 6 GiB",
  );
});

for (const memory of ["512M", "6G"]) {
  test(`dma workload: with tags ignored on ${memory} every breach is a caught fault and the run passes`, async () => {
    const r = await dma(["--memory", memory, "--ignore-tags"]);
    assert.deepEqual(r.problems, []);
    assert.equal(r.status, 0);
    for (const name of ["isa0", "cap0"]) assert.ok(device(r, name).faults > 0, `${name} faulted`);
    let faults = 0;
    for (const d of r.summary.devices) {
      assert.equal(d.caught, d.breaches, `${d.name}: no breach went unnoticed`);
      assert.equal(d.faults, d.caught, `${d.name}: no fault without a breach`);
      assert.equal(d.mismatches, 0, `${d.name}: no byte landed wrong`);
      faults += d.faults;
    }
    assert.ok(faults > 0);
    assert.equal(device(r, "nvme0").faults, 0, "the NVMe device reaches all RAM anyway");
    assert.ok(r.workloads[0]!.counts.faults! > 0);
    assert.deepEqual(r.summary.leaks, NO_LEAKS, "a faulting run still gives everything back");
  });
}

test("dma workload: under --dma-debug correct drivers show no violation", async () => {
  const r = await dma(["--memory", "6G", "--dma-debug"]);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(
    [r.summary.dmaDebug.enabled, r.summary.dmaDebug.violations, r.summary.dmaDebug.list],
    [true, 0, []],
  );
});

test("dma workload: drivers that skip their syncs are caught by --dma-debug, and the run fails", async () => {
  const r = await dma(["--dma-debug", "--driver-bugs", "skip-sync", "-n", "120"]);
  assert.equal(r.status, 1);
  const dbg = r.summary.dmaDebug;
  assert.ok(dbg.violations > 0);
  const kinds = new Set(dbg.list.map((v) => v.kind));
  assert.ok(kinds.has("no-prewrite") && kinds.has("no-postread"), [...kinds].join(" "));
  for (const v of dbg.list) {
    assert.ok(v.map.length > 0 && v.device.length > 0 && v.message.includes(v.device));
  }
  assert.ok(r.problems.some((p) => /^dma-debug: \d+ violations/.test(p)));
  // An unload while the NVMe command is in flight is caught too.
  const e = await dma([
    "--dma-debug",
    "--driver-bugs",
    "early-unload",
    "--devices",
    "nvme",
    "-n",
    "20",
  ]);
  assert.equal(e.status, 1);
  assert.ok(e.summary.dmaDebug.list.some((v) => v.kind === "unload-in-flight"));
});

test("dma workload: repeatable from its seed; without devices it does nothing", async () => {
  const a = await dma(["--memory", "64M", "-s", "7", "-n", "120"]);
  const b = await dma(["--memory", "64M", "-s", "7", "-n", "120"]);
  assert.deepEqual(a.workloads[0]!.counts, b.workloads[0]!.counts);
  const c = await dma(["--memory", "64M", "-s", "8", "-n", "120"]);
  assert.notDeepEqual(a.workloads[0]!.counts, c.workloads[0]!.counts);
  const none = await dma(["--memory", "64M", "--devices", "none"]);
  assert.equal(none.status, 0);
  assert.deepEqual(none.workloads[0]!.counts, { devices: 0 });
});

test("dma workload: a device that moves wrong bytes is an error of the workload", async () => {
  const m = createMachine({ preset: "pc", ramSize: 64 * 2 ** 20 });
  new NvmeModel(m);
  const k = new Kernel(m);
  const port = m.devices[0]!.port;
  const writeSg = port.writeSg.bind(port);
  port.writeSg = (segs, n, src, o) => {
    src[o ?? 0]! ^= 1; // every disk read returns its first byte changed
    return writeSg(segs, n, src, o);
  };
  const w = await dmaWorkload(k, 1, 20);
  assert.ok(w.errors.length > 0);
  assert.match(w.errors[0]!, /nvme: \d+ blocks at lba \d+ read back differ/);
  assert.equal(w.counts.nvmeReads, 20);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("dma workload: an operation that throws half-way is an error and leaks nothing", async () => {
  const m = createMachine({ preset: "pc", ramSize: 64 * 2 ** 20 });
  new NvmeModel(m, { synchronous: true }); // the device's work runs inside the doorbell store
  const k = new Kernel(m);
  const port = m.devices[0]!.port;
  port.readSg = () => {
    throw new Error("the device wedged");
  };
  const w = await dmaWorkload(k, 1, 5);
  assert.deepEqual(w.errors.length, 5);
  assert.match(w.errors[0]!, /^nvme0: the device wedged$/);
  k.check();
  assert.equal(k.kmem.stats.inuse, 0, "the operation's buffers were freed");
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});
