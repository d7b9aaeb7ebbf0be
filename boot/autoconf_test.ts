import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createMachine,
  type DeviceInfo,
  DeviceModel,
  fnv1a,
  INT_DONE,
  INT_ERROR,
  type Machine,
  TWO32,
} from "../machine/mod.ts";
import { Kernel } from "./kernel.ts";
import { BUS_DMASYNC_POSTWRITE, BUS_DMASYNC_PREWRITE } from "../mm/bus_dma.ts";
import { KernelError } from "../mm/errors.ts";
import {
  builtinDrivers,
  DriverBase,
  type DriverKernel,
  type TransferResult,
} from "../devices/mod.ts";
import { NO_LEAKS } from "./_test_util.ts";

// A one-segment checksum engine: ADDR (0x10, 0x14), LEN (0x18), GO (0x1c), SUM (0x20).
class SumModel extends DeviceModel {
  #r = new Uint32Array(8);
  constructor(m: Machine) {
    super(m, { name: "sum0", type: "sumx", id: 0x5355, dma: { maxAddress: 2 ** 28 - 1 } });
  }
  protected readReg(off: number): number {
    return this.#r[off / 4 - 4] ?? 0;
  }
  protected writeReg(off: number, v: number): void {
    if (off >= 0x10 && off < 0x1c) this.#r[off / 4 - 4] = v;
    if (off !== 0x1c) return;
    const r = this.#r, len = r[2]!, buf = new Uint8Array(len);
    const ok = this.dma.read(r[1]! * TWO32 + r[0]!, buf);
    r[4] = ok ? fnv1a(buf) : 0;
    this.interrupt(ok ? INT_DONE : INT_ERROR);
  }
}

class SumDriver extends DriverBase {
  readonly map;
  broken = false;
  constructor(k: DriverKernel, info: DeviceInfo) {
    super(k, info, { type: "sumx", id: 0x5355, narrow: { maxSegments: 1, maxTransfer: 8192 } });
    this.map = this.createMap(this.tag, 8192, 1);
    this.establish();
    this.enableInterrupts();
  }
  async sum(va: number, len: number): Promise<TransferResult> {
    await this.load(this.map, { kind: "kva", va, len });
    try {
      this.sync(this.map, BUS_DMASYNC_PREWRITE);
      const breach = this.breach(this.map.segs, 1);
      this.wr64(0x10, 0x14, this.map.segAddr(0));
      this.wr(0x18, len);
      const isr = await this.command(0x1c, 1);
      this.sync(this.map, BUS_DMASYNC_POSTWRITE);
      if (isr & INT_ERROR) return this.account(this.noteFault() > 0 ? "fault" : "error", breach);
      const data = new Uint8Array(len);
      this.kernel.read(va, data);
      this.counters.transfers++;
      this.counters.bytes += len;
      return this.account(this.rd(0x20) === fnv1a(data) ? "ok" : "mismatch", breach);
    } finally {
      this.busDma.unload(this.map);
    }
  }
  check(): void {
    this.checkCounters("SumDriver");
    if (this.broken) throw new KernelError("CORRUPT", "SumDriver.check: broken on purpose");
  }
  protected quiesce(): void {}
}

function machine(): Machine {
  const m = createMachine({ preset: "pc", ramSize: 512 * 2 ** 20 });
  new SumModel(m);
  return m;
}

test("autoconf: a driver of one's own is attached, logged, summarised, checked and detached like a built-in", async () => {
  const drivers = builtinDrivers();
  drivers.register({ name: "sum", type: "sumx", attach: (k, info) => new SumDriver(k, info) });
  const lines: string[] = [];
  const k = new Kernel(machine(), { drivers, log: (l) => lines.push(l) });
  const d = k.drivers[0] as SumDriver;
  assert.ok(d instanceof SumDriver);
  assert.ok(lines.some((l) => /^device sum0 \(sumx\) at 0x[0-9a-f]+ irq 0: sum driver$/.test(l)));
  assert.ok(lines.includes(`  sum0 dma: ${d.tag.describe()}`));
  assert.equal(d.tag.maxAddress, 2 ** 28 - 1);
  assert.equal(d.tag.bouncePages, 3, "its window leaves out RAM: a reservation of its own");
  const va = k.kmem.alloc(5000);
  k.pmap.write(va, new Uint8Array(5000).fill(3));
  assert.ok(k.pmap.extract(va) >= 2 ** 28, "the buffer needs bouncing");
  assert.equal(await d.sum(va, 5000), "ok");
  const s = k.summary();
  assert.deepEqual(s.devices.map((x) => x.name), ["sum0"]);
  assert.equal(s.devices[0]!.transfers, 1);
  assert.ok(JSON.stringify(s).includes('"name":"sum0"'));
  k.check();
  d.broken = true;
  assert.throws(() => k.check(), /SumDriver.check: broken on purpose/);
  d.broken = false;
  k.kmem.free(va, 5000);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
  assert.ok(d.detached);
  // The fault switch reaches it too.
  const drivers2 = builtinDrivers();
  drivers2.register({ name: "sum", type: "sumx", attach: (k, info) => new SumDriver(k, info) });
  const k2 = new Kernel(machine(), { drivers: drivers2, ignoreTags: true });
  const d2 = k2.drivers[0] as SumDriver;
  assert.ok(d2.ignoreTags);
  const vb = k2.kmem.alloc(100);
  assert.equal(await d2.sum(vb, 100), "fault");
  assert.deepEqual([d2.stats().breaches, d2.stats().caught], [1, 1]);
  assert.deepEqual(k2.dmaProblems(), []);
  k2.kmem.free(vb, 100);
  assert.deepEqual(k2.shutdown(), NO_LEAKS);
});

test("autoconf: a driver never detached is a leak at shutdown: its handler, map, memory and tag", () => {
  const lines: string[] = [];
  const m = machine();
  const k = new Kernel(m, { log: (l) => lines.push(l) });
  assert.ok(
    lines.some((l) =>
      l.endsWith("sum0 (sumx) at 0x" + m.devices[0]!.base.toString(16) + " irq 0: no driver")
    ),
  );
  // Attached by hand, outside autoconfiguration: the kernel does not know it.
  const d = new SumDriver(k, m.devices[0]!);
  assert.deepEqual(k.drivers, []);
  const mem = k.busDma.dmamemAlloc(d.tag, 4096);
  assert.ok(mem.size === 4096);
  const leaks = k.shutdown();
  assert.deepEqual(
    [leaks.handlers, leaks.dmaMaps, leaks.dmaMemory, leaks.dmaTags],
    [1, 1, 1, 1],
  );
  assert.ok(leaks.pages > 0, "the DMA memory's page did not come back");
  const problems = k.dmaProblems();
  assert.ok(
    problems.includes("leak: interrupt line 0 still has a handler (sum0)"),
    problems.join("\n"),
  );
  assert.ok(problems.some((p) => /^leak: bus_dma maps not destroyed: sum0\/map\d+$/.test(p)));
  assert.ok(problems.includes("leak: 1 DMA memory allocations not freed"));
  assert.ok(problems.includes("leak: bus_dma tags not destroyed: sum0"));
});
