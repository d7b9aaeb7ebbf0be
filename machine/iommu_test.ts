import { test } from "node:test";
import assert from "node:assert/strict";
import { Mulberry32 } from "../mm/random.ts";
import { createMachine, type Machine } from "./machine.ts";
import { DMA_24BIT, type DmaMonitor, DmaPort } from "./dma.ts";
import type { MachineError } from "./errors.ts";
import { DeviceModel, FAULT_TRANSLATION, REG_FAULT_KIND } from "./device.ts";
import {
  Iommu,
  IOMMU_CTRL_TE,
  IOMMU_CTX_CLEAR,
  IOMMU_CTX_SET,
  IOMMU_INV_DOMAIN,
  IOMMU_INV_GLOBAL,
  IOMMU_INV_PAGES,
  IOMMU_REG_CTRL,
  IOMMU_REG_CTX_CMD,
  IOMMU_REG_CTX_DOMAIN,
  IOMMU_REG_CTX_ROOT_HI,
  IOMMU_REG_CTX_ROOT_LO,
  IOMMU_REG_FAULT_ADDR_HI,
  IOMMU_REG_FAULT_ADDR_LO,
  IOMMU_REG_FAULT_COUNT,
  IOMMU_REG_FAULT_INFO,
  IOMMU_REG_FAULT_SOURCE,
  IOMMU_REG_ID,
  IOMMU_REG_INV_ADDR_HI,
  IOMMU_REG_INV_ADDR_LO,
  IOMMU_REG_INV_CMD,
  IOMMU_REG_INV_COUNT,
  IOMMU_REG_INV_DOMAIN,
  IOMMU_REG_INV_PAGES,
  IOMMU_REG_SOURCE,
  IOMMU_REG_STATUS,
  IOMMU_ST_BAD_COMMAND,
  IOMMU_ST_BAD_DOMAIN,
  IOMMU_ST_BAD_ROOT,
  IOMMU_ST_BAD_SOURCE,
  IOMMU_ST_OK,
  IOPTE_READ,
  IOPTE_WRITE,
} from "./iommu.ts";

const PAGE = 4096, MiB = 2 ** 20;
const RW = IOPTE_READ | IOPTE_WRITE;

/**
 * A 64 MiB machine with an IOMMU and two bare DMA ports behind it ("a",
 * 64-bit, and "b", 24-bit), and a page-table writer of the test's own that
 * takes table pages from 32 MiB up.
 */
function world(placeAll = true) {
  const m = createMachine({ preset: "pc", ramSize: 64 * MiB, iommu: { placeAll } });
  const iommu = m.iommu!;
  const regs = {
    rd: (off: number) => m.bus.read32(iommu.base + off),
    wr: (off: number, v: number) => m.bus.write32(iommu.base + off, v),
  };
  const attach = (name: string, maxAddress?: number) =>
    m.attach({
      name,
      type: "test",
      dma: { maxAddress },
      registers: { read32: () => 0, write32: () => {} },
    }).dma;
  let next = 32 * MiB;
  const table = () => {
    const pa = next;
    next += PAGE;
    m.ram.fill(pa, PAGE, 0);
    return pa;
  };
  /** Writes the entry of `iova` in the tables under `root`: `pa | perm` (0: clear it). */
  const enter = (root: number, iova: number, pa: number, perm: number) => {
    let t = root;
    for (let level = 3; level >= 1; level--) {
      const at = t + 8 * (Math.floor(iova / 2 ** (12 + 9 * level)) % 512);
      let lo = m.ram.read32(at);
      if ((lo & 3) === 0) {
        const sub = table();
        m.ram.write32(at, sub | RW);
        m.ram.write32(at + 4, Math.floor(sub / 2 ** 32));
        lo = m.ram.read32(at);
      }
      t = m.ram.read32(at + 4) * 2 ** 32 + (lo - (lo & 0xfff));
    }
    const at = t + 8 * (Math.floor(iova / PAGE) % 512);
    m.ram.write32(at, perm === 0 ? 0 : (pa % 2 ** 32) + perm);
    m.ram.write32(at + 4, perm === 0 ? 0 : Math.floor(pa / 2 ** 32));
  };
  /** Installs a context: `source` in `domain` with root table `root`; returns STATUS. */
  const context = (source: number, domain: number, root: number) => {
    regs.wr(IOMMU_REG_SOURCE, source);
    regs.wr(IOMMU_REG_CTX_DOMAIN, domain);
    regs.wr(IOMMU_REG_CTX_ROOT_LO, root % 2 ** 32);
    regs.wr(IOMMU_REG_CTX_ROOT_HI, Math.floor(root / 2 ** 32));
    regs.wr(IOMMU_REG_CTX_CMD, IOMMU_CTX_SET);
    return regs.rd(IOMMU_REG_STATUS);
  };
  const invalidatePages = (domain: number, iova: number, pages: number) => {
    regs.wr(IOMMU_REG_INV_DOMAIN, domain);
    regs.wr(IOMMU_REG_INV_ADDR_LO, iova % 2 ** 32);
    regs.wr(IOMMU_REG_INV_ADDR_HI, Math.floor(iova / 2 ** 32));
    regs.wr(IOMMU_REG_INV_PAGES, pages);
    regs.wr(IOMMU_REG_INV_CMD, IOMMU_INV_PAGES);
    return regs.rd(IOMMU_REG_STATUS);
  };
  return { m, iommu, regs, attach, table, enter, context, invalidatePages };
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

/** A world with port "a" in domain 1, translation on, and pages mapped as `map` says. */
function translating(map: [iova: number, pa: number, perm: number][]) {
  const w = world();
  const a = w.attach("a");
  const root = w.table();
  assert.equal(w.context(a.source, 1, root), IOMMU_ST_OK);
  for (const [iova, pa, perm] of map) w.enter(root, iova, pa, perm);
  w.regs.wr(IOMMU_REG_CTRL, IOMMU_CTRL_TE);
  return { ...w, a, root };
}

test("iommu: the registers identify it, and a machine without one has none", () => {
  const w = world();
  assert.equal(w.regs.rd(IOMMU_REG_ID), 0x554d4f49); // "IOMU"
  assert.equal(w.m.bus.windows()[0]!.name, "iommu0");
  assert.equal(createMachine({ preset: "pc", ramSize: 64 * MiB }).iommu, null);
});

test("iommu: scattered I/O pages reach their frames, and frames that follow each other join", () => {
  // I/O pages 0x10000..0x13000 map frames 5, 6, 2 and 9 MiB: the first two are one run.
  const frames = [5 * MiB, 5 * MiB + PAGE, 2 * MiB, 9 * MiB];
  const w = translating(frames.map((pa, i) => [0x10000 + i * PAGE, pa, RW]));
  const data = bytes(4 * PAGE - 100, 3);
  assert.equal(w.a.write(0x10000 + 50, data), true);
  const back = new Uint8Array(data.length);
  assert.equal(w.a.read(0x10000 + 50, back), true);
  assert.deepEqual(back, data);
  const frame0 = new Uint8Array(PAGE - 50);
  w.m.ram.read(5 * MiB + 50, frame0);
  assert.deepEqual(frame0, data.subarray(0, PAGE - 50));
  const frame3 = new Uint8Array(PAGE - 50);
  w.m.ram.read(9 * MiB, frame3);
  assert.deepEqual(frame3, data.subarray(3 * PAGE - 50));
  // The write touched 4 pages: three runs of RAM (5 MiB joined with the next frame).
  w.a.write(0x10000, bytes(4 * PAGE, 1));
  assert.equal(w.iommu.out[0], 5 * MiB);
  assert.equal(w.iommu.out[1], 2 * PAGE);
  assert.equal(w.iommu.out[2], 2 * MiB);
  assert.equal(w.iommu.out[4], 9 * MiB);
  // A scatter-gather list of I/O addresses, and a fill.
  const segs = new Float64Array([0x12000, 100, 0x10000 + PAGE - 10, 20]);
  const got = new Uint8Array(120);
  assert.equal(w.a.readSg(segs, 2, got), 120);
  const want = new Uint8Array(120);
  w.m.ram.read(2 * MiB, want.subarray(0, 100));
  w.m.ram.read(5 * MiB + PAGE - 10, want.subarray(100, 110));
  w.m.ram.read(5 * MiB + PAGE, want.subarray(110, 120));
  assert.deepEqual(got, want);
  assert.equal(w.a.fill(0x13000, PAGE, 0xab), true);
  assert.equal(w.m.ram.read8(9 * MiB + PAGE - 1), 0xab);
  assert.equal(w.a.faults, 0);
  w.m.check();
});

test("iommu: an unmapped page is a translation fault naming the device, address and access; nothing moves", () => {
  const w = translating([[0x10000, 5 * MiB, RW]]);
  w.m.ram.fill(5 * MiB, PAGE, 0x11);
  // Two segments: the first is mapped, the second not. Neither is written.
  const segs = new Float64Array([0x10000, 64, 0x20000, 64]);
  assert.equal(w.a.writeSg(segs, 2, bytes(128, 9)), -1);
  assert.equal(w.m.ram.read8(5 * MiB), 0x11);
  assert.equal(w.a.translationFaults, 1);
  assert.equal(w.a.faults, 1);
  assert.equal(w.a.lastFault?.kind, "translation");
  assert.equal(w.a.lastFault?.addr, 0x20000);
  const f = w.iommu.lastFault!;
  assert.equal(f.device, "a");
  assert.equal(f.source, w.a.source);
  assert.equal(f.addr, 0x20000);
  assert.equal(f.access, "write");
  assert.equal(f.reason, "not-present");
  assert.match(f.message, /0x20000 is not mapped in domain 1/);
  // The fault registers show it until a store to FAULT_INFO.
  assert.equal(w.regs.rd(IOMMU_REG_FAULT_COUNT), 1);
  assert.equal(w.regs.rd(IOMMU_REG_FAULT_SOURCE), w.a.source);
  assert.equal(w.regs.rd(IOMMU_REG_FAULT_ADDR_LO), 0x20000);
  assert.equal(w.regs.rd(IOMMU_REG_FAULT_ADDR_HI), 0);
  assert.equal(w.regs.rd(IOMMU_REG_FAULT_INFO), 1 | 0x100);
  w.regs.wr(IOMMU_REG_FAULT_INFO, 0);
  assert.equal(w.regs.rd(IOMMU_REG_FAULT_INFO), 0);
  assert.equal(w.regs.rd(IOMMU_REG_FAULT_COUNT), 1);
  // A read of an unmapped page, one segment.
  assert.equal(w.a.read(0x30000, new Uint8Array(8)), false);
  assert.equal(w.iommu.lastFault?.access, "read");
  assert.equal(w.iommu.faults, 2);
  assert.equal(w.iommu.faultLog().length, 2);
  w.m.check();
});

test("iommu: a write to a read-only page faults, a read of it works; a write-only page refuses reads", () => {
  const w = translating([[0x10000, 5 * MiB, IOPTE_READ], [0x11000, 6 * MiB, IOPTE_WRITE]]);
  w.m.ram.fill(5 * MiB, PAGE, 0x22);
  assert.equal(w.a.write(0x10000, bytes(16, 1)), false);
  assert.equal(w.iommu.lastFault?.reason, "read-only");
  assert.match(
    w.iommu.lastFault!.message,
    /write to I\/O virtual 0x10000, which domain 1 maps read-only/,
  );
  assert.equal(w.m.ram.read8(5 * MiB), 0x22);
  assert.equal(w.a.fill(0x10000, 16, 0), false);
  assert.equal(w.m.ram.read8(5 * MiB), 0x22);
  const got = new Uint8Array(16);
  assert.equal(w.a.read(0x10000, got), true);
  assert.equal(got[0], 0x22);
  assert.equal(w.a.write(0x11000, bytes(16, 1)), true);
  assert.equal(w.a.read(0x11000, got), false);
  assert.equal(w.iommu.lastFault?.reason, "no-read");
  // The permission is the AND of the levels: a read-only upper entry makes the page read-only.
  const lo = w.m.ram.read32(w.root);
  w.m.ram.write32(w.root, lo - (lo & 3) + IOPTE_READ);
  w.regs.wr(IOMMU_REG_INV_CMD, IOMMU_INV_GLOBAL);
  assert.equal(w.a.write(0x11000, bytes(16, 1)), false);
  assert.equal(w.iommu.lastFault?.reason, "read-only");
  assert.equal(w.a.translationFaults, 4);
  w.m.check();
});

test("iommu: a stale IOTLB entry survives an unmap until it is invalidated, as on real hardware", () => {
  const w = translating([[0x10000, 5 * MiB, RW], [0x11000, 6 * MiB, RW]]);
  w.m.ram.fill(5 * MiB, PAGE, 0x33);
  const got = new Uint8Array(8);
  assert.equal(w.a.read(0x10000, got), true); // the translation is now cached
  const misses = w.iommu.iotlbMisses;
  w.enter(w.root, 0x10000, 0, 0); // the kernel clears the entry, forgets to invalidate
  assert.equal(w.a.read(0x10000, got), true, "the stale entry still translates");
  assert.equal(got[0], 0x33);
  assert.equal(w.a.write(0x10000, bytes(8, 5)), true, "and lets the device write the old frame");
  assert.equal(w.m.ram.read8(5 * MiB), 5);
  assert.equal(w.iommu.iotlbMisses, misses);
  assert.ok(w.iommu.iotlbHits >= 2);
  // A page invalidation of another page leaves it; one of this page drops it.
  assert.equal(w.invalidatePages(1, 0x11000, 1), IOMMU_ST_OK);
  assert.equal(w.a.read(0x10000, got), true);
  assert.equal(w.invalidatePages(1, 0x10000, 1), IOMMU_ST_OK);
  assert.equal(w.a.read(0x10000, got), false);
  assert.equal(w.iommu.lastFault?.reason, "not-present");
  assert.equal(w.regs.rd(IOMMU_REG_INV_COUNT), 2);
  // Remapping without invalidation: the IOTLB keeps the old frame of a cached page.
  assert.equal(w.a.read(0x11000, got), true);
  w.enter(w.root, 0x11000, 7 * MiB, RW);
  w.m.ram.fill(7 * MiB, PAGE, 0x77);
  w.m.ram.fill(6 * MiB, PAGE, 0x66);
  w.a.read(0x11000, got);
  assert.equal(got[0], 0x66);
  // A domain invalidation of another domain leaves it; of its own, drops it.
  w.regs.wr(IOMMU_REG_INV_DOMAIN, 2);
  w.regs.wr(IOMMU_REG_INV_CMD, IOMMU_INV_DOMAIN);
  w.a.read(0x11000, got);
  assert.equal(got[0], 0x66);
  w.regs.wr(IOMMU_REG_INV_DOMAIN, 1);
  w.regs.wr(IOMMU_REG_INV_CMD, IOMMU_INV_DOMAIN);
  w.a.read(0x11000, got);
  assert.equal(got[0], 0x77);
  // A page invalidation of more pages than the IOTLB holds scans it whole.
  w.enter(w.root, 0x11000, 0, 0);
  assert.equal(w.invalidatePages(1, 0, 100000), IOMMU_ST_OK);
  assert.equal(w.a.read(0x11000, got), false);
  w.m.check();
});

test("iommu: invalidation and context commands it cannot carry out change nothing and say why", () => {
  const w = translating([[0x10000, 5 * MiB, RW]]);
  const count = w.iommu.invalidations;
  assert.equal(w.invalidatePages(1, 0x10010, 1), IOMMU_ST_BAD_COMMAND);
  assert.equal(w.invalidatePages(1, 0x10000, 0), IOMMU_ST_BAD_COMMAND);
  w.regs.wr(IOMMU_REG_INV_CMD, 9);
  assert.equal(w.regs.rd(IOMMU_REG_STATUS), IOMMU_ST_BAD_COMMAND);
  assert.equal(w.iommu.invalidations, count);
  const src = w.a.source;
  // Roots: 0, misaligned, not RAM; a domain past 65535; a source out of scope; a bad command.
  const good = w.table();
  assert.equal(w.context(src, 2, 0), IOMMU_ST_BAD_ROOT);
  assert.equal(w.context(src, 2, good + 8), IOMMU_ST_BAD_ROOT);
  assert.equal(w.context(src, 2, 0xfe000000), IOMMU_ST_BAD_ROOT);
  assert.equal(w.context(src, 0x10000, good), IOMMU_ST_BAD_DOMAIN);
  assert.equal(w.context(7, 2, good), IOMMU_ST_BAD_SOURCE);
  w.regs.wr(IOMMU_REG_CTX_CMD, 5);
  assert.equal(w.regs.rd(IOMMU_REG_STATUS), IOMMU_ST_BAD_COMMAND);
  // The context is still domain 1 at the old root, and translates.
  w.regs.wr(IOMMU_REG_SOURCE, src);
  assert.equal(w.regs.rd(IOMMU_REG_CTX_DOMAIN), 1);
  assert.equal(w.regs.rd(IOMMU_REG_CTX_ROOT_LO), w.root);
  assert.equal(w.regs.rd(IOMMU_REG_CTX_ROOT_HI), 0);
  assert.equal(w.a.read(0x10000, new Uint8Array(4)), true);
  // CLEAR blocks the source.
  w.regs.wr(IOMMU_REG_CTX_CMD, IOMMU_CTX_CLEAR);
  assert.equal(w.regs.rd(IOMMU_REG_STATUS), IOMMU_ST_OK);
  assert.equal(w.a.read(0x10000, new Uint8Array(4)), false);
  assert.equal(w.iommu.lastFault?.reason, "blocked");
  assert.match(w.iommu.lastFault!.message, /has no context: its DMA is blocked/);
  w.m.check();
});

test("iommu: with translation off, DMA passes to RAM as it is; a source with no context is blocked once it is on", () => {
  const w = world();
  const a = w.attach("a");
  assert.equal(a.write(5 * MiB, bytes(64, 2)), true);
  assert.equal(w.m.ram.read8(5 * MiB), 2);
  w.regs.wr(IOMMU_REG_CTRL, IOMMU_CTRL_TE);
  assert.equal(w.regs.rd(IOMMU_REG_CTRL), IOMMU_CTRL_TE);
  assert.equal(a.write(5 * MiB, bytes(64, 3)), false);
  assert.equal(w.m.ram.read8(5 * MiB), 2);
  assert.equal(w.iommu.lastFault?.reason, "blocked");
});

test("iommu: the device's own limits apply to the addresses it drives, before translation", () => {
  const w = world();
  const b = w.attach("b", DMA_24BIT);
  const root = w.table();
  w.context(b.source, 3, root);
  // I/O address 0x1000 maps a frame above 16 MiB: the 24-bit device reaches it.
  w.enter(root, 0x1000, 40 * MiB, RW);
  w.enter(root, 17 * MiB, 5 * MiB, RW);
  w.regs.wr(IOMMU_REG_CTRL, IOMMU_CTRL_TE);
  assert.equal(b.write(0x1000, bytes(32, 4)), true);
  assert.equal(w.m.ram.read8(40 * MiB), 4);
  // An I/O address past 24 bits is the device's access fault, not the IOMMU's.
  assert.equal(b.write(17 * MiB, bytes(32, 4)), false);
  assert.equal(b.lastFault?.kind, "access");
  assert.equal(w.iommu.faults, 0);
});

test("iommu: an address past 48 bits, a table that is not RAM and a frame that is not RAM", () => {
  const w = translating([[0x10000, 0xf0000000, RW]]);
  assert.equal(w.a.read(2 ** 48 - PAGE, new Uint8Array(2 * PAGE)), false);
  assert.equal(w.iommu.lastFault?.reason, "width");
  assert.match(w.iommu.lastFault!.message, /past the IOMMU's 48-bit address width/);
  // The frame of 0x10000 is not RAM: the port's decode fault names where it went.
  assert.equal(w.a.read(0x10000, new Uint8Array(8)), false);
  assert.equal(w.a.lastFault?.kind, "decode");
  assert.match(w.a.lastFault!.reason, /translated to 0xf0000000/);
  assert.equal(w.a.readSg(new Float64Array([0x10000, 8]), 1, new Uint8Array(8)), -1);
  assert.equal(w.a.lastFault?.kind, "decode");
  // A root entry that points outside RAM.
  w.m.ram.write32(w.root + 8, 0xf0000000 | RW);
  assert.equal(w.a.read(2 ** 39, new Uint8Array(8)), false);
  assert.equal(w.iommu.lastFault?.reason, "table");
  w.m.check();
});

test("iommu: a validate translates too, and the monitor sees the addresses the device drives", () => {
  const w = translating([[0x10000, 5 * MiB, IOPTE_READ]]);
  const seen: number[] = [];
  const mon: DmaMonitor = { transferred: (_p, _op, segs, n) => seen.push(segs[0]!, segs[1]!, n) };
  w.a.monitor = mon;
  assert.equal(w.a.validate(0x10000, 64, "read"), true);
  assert.equal(w.a.validate(0x10000, 64, "write"), false);
  assert.equal(w.a.validate(0x11000, 64, "read"), false);
  w.a.read(0x10000 + 8, new Uint8Array(16));
  w.a.readSg(new Float64Array([0x10000, 32]), 1, new Uint8Array(32));
  assert.deepEqual(seen, [0x10008, 16, 1, 0x10000, 32, 1]);
});

class Plain extends DeviceModel {
  constructor(m: Machine) {
    super(m, { name: "plain0", type: "plain", id: 1, dma: {}, synchronous: true });
  }
  protected readReg(): number {
    return 0;
  }
  protected writeReg(): void {}
  write(pa: number, n: number): boolean {
    return this.dma.write(pa, new Uint8Array(n));
  }
}

test("iommu: a device model reports a translation fault in FAULT_KIND", () => {
  const w = world();
  const dev = new Plain(w.m);
  w.regs.wr(IOMMU_REG_CTRL, IOMMU_CTRL_TE);
  assert.equal(dev.write(0x10000, 8), false);
  assert.equal(w.m.bus.read32(dev.base + REG_FAULT_KIND), FAULT_TRANSLATION);
});

test("iommu: placement: every device with placeAll, only those placed without, each once", () => {
  const all = world(true);
  const a = all.attach("a"), b = all.attach("b");
  assert.deepEqual(all.iommu.scope, [{ name: "a", source: 0 }, { name: "b", source: 1 }]);
  assert.equal(a.source, 0);
  assert.equal(b.source, 1);
  assert.throws(() => all.iommu.place(a), (e: MachineError) => e.code === "EBUSY");
  const some = world(false);
  const c = some.attach("c"), d = some.attach("d");
  assert.equal(c.source, -1);
  assert.equal(some.iommu.place(d), 0);
  assert.deepEqual(some.iommu.scope, [{ name: "d", source: 0 }]);
  some.regs.wr(IOMMU_REG_CTRL, IOMMU_CTRL_TE);
  assert.equal(c.write(5 * MiB, bytes(8, 1)), true, "a device not behind it is not translated");
  assert.equal(d.write(5 * MiB, bytes(8, 1)), false);
});

test("iommu: bad options and a bad placement are refused by name", () => {
  const m = createMachine({ preset: "pc", ramSize: 64 * MiB });
  for (const bad of [3, 0, 2 ** 17, 1.5, NaN, 8n, "8", true]) {
    assert.throws(
      () => new Iommu(m.ram, m.bus, { iotlbEntries: bad as number }),
      (e: MachineError) => e.code === "EINVAL" && /iotlbEntries/.test(e.message),
    );
  }
  assert.throws(
    () => new Iommu(m.ram, m.bus, { placeAll: 1 as unknown as boolean }),
    (e: MachineError) => e.code === "EINVAL" && /placeAll/.test(e.message),
  );
  assert.throws(
    () => new Iommu(m.ram, m.bus, null as unknown as object),
    (e: MachineError) => e.code === "EINVAL",
  );
  assert.equal(m.bus.windows().length, 0, "a refused IOMMU maps no window");
  for (const bad of [null, 1, "yes", 1n, NaN]) {
    assert.throws(
      () => createMachine({ preset: "pc", ramSize: 64 * MiB, iommu: bad as unknown as boolean }),
      (e: MachineError) => e.code === "EINVAL" && /iommu must be/.test(e.message),
    );
  }
  const port = new DmaPort(m.ram, "p", {});
  const iommu = new Iommu(m.ram, m.bus);
  for (const bad of [-1, 0x10000, 1.5, NaN, 1n, "1", undefined, null, false]) {
    assert.throws(
      () => port.placeBehind(iommu, bad as number),
      (e: MachineError) => e.code === "EINVAL" && /source/.test(e.message),
    );
  }
  assert.throws(() => port.placeBehind(null as unknown as Iommu, 0), /translator/);
  assert.equal(port.source, -1);
});

test("iommu: random mappings, transfers and invalidations agree with a plain model of the tables", () => {
  const w = translating([]);
  const rng = new Mulberry32(14);
  const PAGES = 64, IOVA = 0x40_0000;
  // What the tables say (frame, perm) and what the device should reach: the
  // kernel here always invalidates what it changes.
  const frameOf = new Float64Array(PAGES), permOf = new Uint8Array(PAGES);
  for (let step = 0; step < 2000; step++) {
    const page = rng.below(PAGES), iova = IOVA + page * PAGE;
    const r = rng.below(10);
    if (r < 3) {
      const frame = (1 + rng.below(30)) * MiB / PAGE * PAGE + rng.below(8) * PAGE;
      const perm = 1 + rng.below(3);
      w.enter(w.root, iova, frame, perm);
      frameOf[page] = frame;
      permOf[page] = perm;
      w.invalidatePages(1, iova, 1);
    } else if (r < 4) {
      w.enter(w.root, iova, 0, 0);
      permOf[page] = 0;
      if (rng.below(2) === 0) w.invalidatePages(1, iova, 1);
      else w.regs.wr(IOMMU_REG_INV_CMD, IOMMU_INV_GLOBAL);
    } else {
      // A transfer of up to three pages from inside `page`.
      const off = rng.below(PAGE), len = 1 + rng.below(3 * PAGE - off);
      const write = rng.below(2) === 0;
      let ok = true;
      for (let p = page; p <= page + Math.floor((off + len - 1) / PAGE); p++) {
        ok &&= p < PAGES && (permOf[p]! & (write ? IOPTE_WRITE : IOPTE_READ)) !== 0;
      }
      const data = bytes(len, step);
      const faults = w.iommu.faults;
      if (write) {
        assert.equal(w.a.write(iova + off, data), ok, `step ${step}`);
        if (ok) {
          // Every byte landed in the frame its page maps.
          let i = 0;
          for (let p = page, o = off; i < len; p++, o = 0) {
            const n = Math.min(len - i, PAGE - o);
            const got = new Uint8Array(n);
            w.m.ram.read(frameOf[p]! + o, got);
            assert.deepEqual(got, data.subarray(i, i + n), `step ${step} page ${p}`);
            i += n;
          }
        }
      } else {
        assert.equal(w.a.read(iova + off, new Uint8Array(len)), ok, `step ${step}`);
      }
      assert.equal(w.iommu.faults, faults + (ok ? 0 : 1));
    }
    w.m.check();
  }
  assert.ok(w.iommu.iotlbHits > 0 && w.iommu.iotlbMisses > 0 && w.iommu.faults > 0);
  assert.equal(w.a.translationFaults, w.iommu.faults);
});
