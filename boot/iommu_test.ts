import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { formatSummary, run, runJson, type RunResult } from "./run.ts";
import { parseBootArgs, USAGE } from "./options.ts";
import { createMachine } from "../machine/mod.ts";
import { Kernel } from "./kernel.ts";
import type { KernelError } from "../mm/errors.ts";
import { NvmeModel } from "../devices/mod.ts";
import { NO_LEAKS } from "./_test_util.ts";

/** A clean shutdown of a kernel that uses the IOMMU. */
const NO_IO_LEAKS = { ...NO_LEAKS, iovaBytes: 0, ioTablePages: 0 };

function dma(args: string[]): Promise<RunResult> {
  return run(parseBootArgs(["-w", "dma", "-n", "300", "--iommu", ...args]));
}

test("options: --iommu puts the devices behind an IOMMU; it is off unless asked", () => {
  assert.equal(parseBootArgs([]).iommu, false);
  assert.equal(parseBootArgs(["--iommu"]).iommu, true);
  assert.match(USAGE, /--iommu +put every device behind an IOMMU/);
});

test("kernel: iommu on a machine without one is refused; an IOMMU the kernel does not use translates nothing", () => {
  const bare = createMachine({ preset: "pc", ramSize: 64 * 2 ** 20 });
  assert.throws(
    () => new Kernel(bare, { iommu: true }),
    (e: KernelError) => e.code === "ENODEV" && /no IOMMU/.test(e.message),
  );
  for (const bad of ["yes", 1, null, 1n]) {
    assert.throws(
      () => new Kernel(bare, { iommu: bad as unknown as boolean }),
      (e: KernelError) => e.code === "EINVAL" && /iommu must be a boolean/.test(e.message),
    );
  }
  const m = createMachine({ preset: "pc", ramSize: 64 * 2 ** 20, iommu: true });
  new NvmeModel(m);
  const lines: string[] = [];
  const k = new Kernel(m, { log: (l) => lines.push(l) });
  assert.ok(lines.includes("iommu: present but not used: DMA is not translated"));
  assert.equal(k.iommu, null);
  assert.equal(m.iommu!.enabled, false);
  assert.equal(k.summary().iommu.enabled, false);
  assert.equal(k.drivers[0]!.tag.domain, null);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

for (const memory of ["64M", "6G"]) {
  test(`dma workload --iommu on ${memory}: every device's DMA is translated and nothing bounces`, async () => {
    const r = await dma(["--memory", memory]);
    assert.deepEqual(r.problems, []);
    assert.equal(r.status, 0);
    assert.deepEqual(r.summary.leaks, NO_IO_LEAKS);
    const io = r.summary.iommu;
    assert.equal(io.enabled, true);
    assert.ok(io.maps > 0 && io.unmaps > 0 && io.invalidations >= io.unmaps, JSON.stringify(io));
    assert.equal(io.faults, 0);
    assert.equal(r.summary.busDma.bouncedBytes, 0);
    assert.deepEqual(
      io.domains.map((d) => [d.id, d.device, d.base, d.base + d.size]),
      [
        [1, "isa0", 0x1000, 2 ** 24],
        [2, "nic0", 0x1000, 2 ** 32],
        [3, "nvme0", 0x1000, 2 ** 48],
        [4, "cap0", 0x1000, 2 ** 30],
      ],
    );
    for (const d of r.summary.devices) {
      assert.ok(d.transfers > 0, `${d.name} moved data`);
      assert.equal(d.bouncedBytes + d.faults + d.mismatches + d.errors, 0, d.name);
    }
    // The tags reserve no bounce pages but the ISA map's bounce buffer (a layout no address fixes).
    assert.deepEqual(r.summary.busDma.pool.tags.map((t) => t.tag), ["isa0"]);
    const hw = r.kernel.machine.iommu!;
    assert.ok(hw.translations > 0 && hw.iotlbMisses > 0);
    assert.equal(r.kernel.machine.device("nvme0")!.port.translationFaults, 0);
    const text = formatSummary(r).join("\n");
    assert.match(text, /\n {2}iommu +\d+ maps, \d+ unmaps, \d+ invalidations, 0 faults; /);
    assert.match(text, /\n {2}iommu domain 1 isa0 +I\/O virtual \[0x1000, 0x1000000\): \d+ maps/);
    assert.match(text, /I\/O virtual bytes 0, I\/O table pages 0\n/);
    const json = JSON.parse(JSON.stringify(runJson(r)));
    assert.equal(json.summary.iommu.maps, io.maps);
  });
}

test("dma workload --iommu --ignore-tags: the IOMMU faults the physical addresses drivers program", async () => {
  const r = await dma(["--memory", "6G", "--ignore-tags"]);
  assert.deepEqual(r.problems, []);
  assert.equal(r.status, 0);
  const io = r.summary.iommu;
  assert.ok(io.faults > 0);
  assert.equal(io.maps, 0, "a driver that ignores its tag maps nothing");
  for (const d of r.summary.devices) {
    assert.ok(d.breaches > 0, `${d.name} breached`);
    assert.equal(d.caught, d.breaches, `${d.name}: every breach caught`);
    assert.equal(d.faults, d.caught, `${d.name}: no fault without a breach`);
    assert.equal(d.mismatches, 0, `${d.name}: no byte landed wrong`);
  }
  // The NVMe device reaches all of RAM: only the IOMMU stops it now.
  const nvme = r.kernel.machine.device("nvme0")!.port;
  assert.ok(nvme.translationFaults > 0);
  assert.equal(nvme.faults, nvme.translationFaults);
  assert.deepEqual(r.summary.leaks, NO_IO_LEAKS);
});

test("dma workload --iommu: DMA-API debugging sees no violation; an early unload is a translation fault", async () => {
  const ok = await dma(["--memory", "64M", "--dma-debug"]);
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.summary.dmaDebug.violations, 0);
  // The NVMe driver unloads its map while the command is in flight: the
  // device then finds its pages unmapped.
  const bad = await dma(["--memory", "64M", "--driver-bugs", "early-unload", "--devices", "nvme"]);
  assert.equal(bad.status, 1);
  assert.ok(bad.summary.iommu.faults > 0);
  assert.equal(bad.kernel.machine.iommu!.lastFault?.device, "nvme0");
  assert.match(bad.problems.join("\n"), /nvme0: \d+ DMA faults within the device's limits/);
});

test("kernel --iommu: a map left loaded at shutdown leaks its I/O virtual space and page tables", () => {
  const m = createMachine({ preset: "pc", ramSize: 64 * 2 ** 20, iommu: true });
  new NvmeModel(m);
  const lines: string[] = [];
  const k = new Kernel(m, { iommu: true, log: (l) => lines.push(l) });
  assert.ok(lines.includes(
    "iommu: domain 1 for nvme0: I/O virtual [0x1000, 0x1000000000000), " +
      "quantum caches up to 65536",
  ));
  assert.match(lines.join("\n"), /nvme0 dma: .*, I\/O virtual \(IOMMU domain 1\)/);
  const tag = k.busDma.tagForDevice(m.device("nvme0")!, {}, { name: "stray" });
  const map = k.busDma.createMap(tag, 8192, 4);
  const va = k.kmem.alloc(8192);
  k.busDma.load(map, va, 8192);
  k.check();
  const leaks = k.shutdown();
  assert.equal(leaks.dmaMaps, 1);
  assert.equal(leaks.iovaBytes, 8192);
  assert.ok(leaks.ioTablePages! >= 4);
  assert.ok(leaks.pages >= leaks.ioTablePages!, "its table pages are not back either");
  const problems = k.dmaProblems().join("\n");
  assert.match(problems, /leak: iommu: 8192 bytes of I\/O virtual space not freed/);
  assert.match(problems, /leak: iommu: \d+ I\/O page-table pages still in use/);
});

test("kernel --iommu: the domains' I/O address arenas are the kernel's, reaped with its other arenas", () => {
  const kernels = [0, 1].map(() => {
    const m = createMachine({ preset: "pc", ramSize: 64 * 2 ** 20, iommu: true });
    new NvmeModel(m);
    return new Kernel(m, { iommu: true });
  });
  for (const k of kernels) {
    const domains = k.iommu!.domains;
    assert.ok(domains.length > 0);
    for (const d of domains) assert.equal(d.arena.group, k.vmemGroup);
    assert.equal(k.iommu!.vmemGroup, k.vmemGroup);
  }
  assert.notEqual(kernels[0]!.vmemGroup, kernels[1]!.vmemGroup);
  for (const k of kernels) {
    assert.deepEqual(k.shutdown(), { ...NO_LEAKS, iovaBytes: 0, ioTablePages: 0 });
  }
});

test('README "The IOMMU": its boot and summary lines are what the run it names prints', async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## The IOMMU"), readme.indexOf("## Benchmarks"));
  const blocks = [...section.matchAll(/```\n([\s\S]*?)```/g)].map((m) => m[1]!.split("\n"));
  assert.equal(blocks.length, 2);
  const lines: string[] = [];
  const r = await run(
    parseBootArgs(["--memory", "6G", "--iommu", "-w", "dma"]),
    (l) => lines.push(l),
  );
  const printed = new Set([...lines, ...formatSummary(r)]);
  for (const line of blocks.flat()) {
    if (line !== "") assert.ok(printed.has(line), `README line not printed: ${line}`);
  }
});
