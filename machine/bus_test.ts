import { test } from "node:test";
import assert from "node:assert/strict";
import { Bus, type MmioHandlers } from "./bus.ts";
import { MMIO_HOLE_BASE, presetMemoryMap } from "./memmap.ts";
import { MachineError, MachineFault } from "./errors.ts";

/** A device with eight 32-bit registers that records its accesses. */
function regs(log: string[]): MmioHandlers & { r: Uint32Array } {
  const r = new Uint32Array(8);
  return {
    r,
    read32(off) {
      log.push(`r${off}`);
      return r[off / 4]!;
    },
    write32(off, v) {
      log.push(`w${off}=${v}`);
      r[off / 4] = v;
    },
  };
}

test("bus: windows are placed in the MMIO hole, aligned to their size, and dispatched by offset", () => {
  const bus = new Bus(presetMemoryMap("pc"));
  const log: string[] = [];
  const a = regs(log), b = regs(log);
  const baseA = bus.allocate(4096);
  assert.equal(baseA, MMIO_HOLE_BASE);
  bus.map("a", baseA, 4096, a);
  const baseB = bus.allocate(16384);
  assert.equal(baseB, MMIO_HOLE_BASE + 16384); // 16 KiB-aligned, past a
  bus.map("b", baseB, 16384, b);
  assert.equal(bus.allocate(4096), MMIO_HOLE_BASE + 4096); // first fit fills the gap
  bus.write32(baseA + 8, 0xdeadbeef);
  bus.write32(baseB + 4, -1);
  assert.equal(a.r[2], 0xdeadbeef);
  assert.equal(b.r[1], 0xffffffff);
  assert.equal(bus.read32(baseA + 8), 0xdeadbeef);
  bus.write64n(baseB + 8, 2 ** 40 + 7);
  assert.deepEqual([b.r[2], b.r[3]], [7, 256]);
  assert.equal(bus.read64n(baseB + 8), 2 ** 40 + 7);
  assert.equal(bus.read64(baseB + 8), 2n ** 40n + 7n);
  bus.write64(baseA + 16, 0x1122334455667788n);
  assert.deepEqual([a.r[4], a.r[5]], [0x55667788, 0x11223344]);
  assert.deepEqual(log.slice(-2), ["w16=1432778632", "w20=287454020"]); // low word first
  assert.equal(bus.accesses, 7);
  assert.deepEqual(bus.windows().map((w) => w.name), ["a", "b"]);
  bus.check();
});

test("bus: unmapped, unaligned and RAM addresses fault without calling any device", () => {
  const bus = new Bus(presetMemoryMap("pc"));
  const log: string[] = [];
  const base = bus.allocate(4096);
  bus.map("a", base, 4096, regs(log));
  const faults: [number, RegExp][] = [
    [base + 4096, /no MMIO window at 0xc0001000 \(mmio "pci hole" is there\)/],
    [0x100000, /ram "extended memory"/],
    [base + 2, /unaligned 32-bit/],
    [-4, /not a non-negative integer/],
  ];
  for (const [pa, re] of faults) {
    assert.throws(() => bus.read32(pa), (e: unknown) => {
      assert.ok(e instanceof MachineFault);
      assert.equal(e.kind, "read");
      assert.equal(e.addr, pa);
      assert.match(e.message, re);
      return true;
    });
    assert.throws(() => bus.write32(pa, 1), MachineFault);
  }
  assert.throws(() => bus.read64(base + 4092), /past the end/);
  assert.throws(() => bus.write32(base, 2 ** 32), MachineError);
  assert.deepEqual(log, []);
});

test("bus: overlapping or misplaced windows are refused; unmap frees the place", () => {
  const bus = new Bus(presetMemoryMap("isa"));
  const h = regs([]);
  bus.map("a", MMIO_HOLE_BASE, 8192, h);
  assert.throws(
    () => bus.map("b", MMIO_HOLE_BASE + 4096, 4096, h),
    (e: unknown) =>
      e instanceof MachineError && e.code === "EBUSY" && /overlaps "a"/.test(e.message),
  );
  assert.throws(() => bus.map("c", 0x100000, 4096, h), /not inside an MMIO region/);
  assert.throws(() => bus.map("d", MMIO_HOLE_BASE + 100, 4096, h), /page-aligned/);
  assert.throws(() => bus.map("e", 4 * 2 ** 30 - 4096, 8192, h), /not inside/);
  assert.throws(() => bus.map("f", MMIO_HOLE_BASE + 8192, 4096, {} as MmioHandlers), /read32/);
  assert.throws(
    () => bus.allocate(2 ** 31),
    (e: unknown) => e instanceof MachineError && e.code === "ENOSPC",
  );
  assert.equal(bus.windows().length, 1);
  bus.unmap(MMIO_HOLE_BASE);
  assert.throws(() => bus.read32(MMIO_HOLE_BASE), MachineFault);
  assert.equal(bus.allocate(4096), MMIO_HOLE_BASE);
  assert.throws(() => bus.unmap(MMIO_HOLE_BASE), MachineError);
  bus.check();
});
