import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import {
  createMachine,
  DMA_32BIT,
  MachineError,
  MachineFault,
  MemoryMap,
  MMIO_HOLE_BASE,
} from "./mod.ts";

const MiB = 1024 * 1024, GiB = 1024 * MiB;

test("machine: the default is a 512 MiB pc whose RAM slots are the map's RAM regions", () => {
  const m = createMachine();
  assert.equal(m.preset, "pc");
  assert.deepEqual(
    m.ram.slots,
    m.memmap.ofType("ram").map((r) => ({ base: r.base, size: r.size })),
  );
  m.ram.write32(511 * MiB, 7);
  assert.equal(m.ram.read32(511 * MiB), 7);
  assert.throws(() => m.ram.read32(0), MachineFault); // the reserved first page
  assert.throws(() => m.ram.write8(0xa0000, 1), MachineFault); // the legacy hole
  assert.throws(() => m.ram.read8(512 * MiB), MachineFault);
  m.check();
});

test("machine: a 64 GiB big machine is usable and costs only what is touched", () => {
  const before = process.memoryUsage().rss;
  const m = createMachine({ preset: "big" });
  const top = m.memmap.ramEnd();
  assert.equal(top, 65 * GiB);
  m.ram.write64n(top - 8, 2 ** 53 - 1);
  m.ram.write32(3 * GiB - 4, 0x12345678); // last word below the hole
  m.ram.fill(32 * GiB, 1 * MiB, 0x11);
  assert.equal(m.ram.read64n(top - 8), 2 ** 53 - 1);
  assert.equal(m.ram.read32(3 * GiB - 4), 0x12345678);
  assert.equal(m.ram.read8(32 * GiB + MiB - 1), 0x11);
  assert.throws(() => m.ram.read32(3 * GiB), MachineFault); // the MMIO hole is not RAM
  assert.equal(m.ram.touchedBytes(), 2 * 65536 + MiB);
  m.check();
  const grown = process.memoryUsage().rss - before;
  // The process is shared with test files running in parallel, so the bound is loose; what
  // it rules out is the guest's RAM being committed on the host.
  assert.ok(grown < 256 * MiB, `host memory grew by ${grown} bytes`);
});

test("machine: attaching a device gives it a window, a line and a DMA port", () => {
  const m = createMachine({ preset: "isa" });
  const regs = new Uint32Array(4);
  const a = m.attach({
    name: "dev0",
    type: "test",
    dma: { maxAddress: DMA_32BIT, alignment: 4 },
    registers: {
      read32: (off) => regs[off / 4]!,
      write32: (off, v) => {
        regs[off / 4] = v;
        if (off === 0) {
          // "doorbell": copy 8 bytes from regs[1] to regs[2] by DMA, then interrupt
          const b = new Uint8Array(8);
          if (a.dma.read(regs[1]!, b) && a.dma.write(regs[2]!, b)) a.irq.raise();
        }
      },
    },
  });
  assert.equal(a.window.base, MMIO_HOLE_BASE);
  assert.equal(a.irq.line, 0);
  const info = m.device("dev0")!;
  assert.deepEqual([info.type, info.base, info.size, info.irq], ["test", MMIO_HOLE_BASE, 4096, 0]);
  assert.equal(info.dma.alignment, 4);
  m.ram.write64n(0x200000, 0x0102030405);
  let interrupts = 0;
  m.irq.establish(info.irq, () => {
    interrupts++;
    a.irq.lower();
  });
  m.bus.write32(info.base + 4, 0x200000);
  m.bus.write32(info.base + 8, 0x300000);
  m.bus.write32(info.base, 1);
  assert.equal(m.irq.deliver(), 1);
  assert.equal(interrupts, 1);
  assert.equal(m.ram.read64n(0x300000), 0x0102030405);
  assert.equal(info.port.bytes, 16);
  const b = m.attach({
    name: "dev1",
    type: "test",
    windowSize: 100,
    dma: { maxAddress: 255 },
    registers: { read32: () => 0, write32: () => {} },
  });
  assert.equal(b.window.base, MMIO_HOLE_BASE + 4096);
  assert.equal(b.window.size, 4096);
  assert.equal(b.irq.line, 1);
  assert.deepEqual(m.devices.map((d) => d.name), ["dev0", "dev1"]);
  m.check();
});

test("machine: a refused attach changes nothing", () => {
  const m = createMachine({ preset: "isa", irqLines: 1 });
  const registers = { read32: () => 0, write32: () => {} };
  const dma = { maxAddress: DMA_32BIT };
  assert.throws(() => m.attach({ name: "", type: "t", dma, registers }), /name/);
  assert.throws(
    () => m.attach({ name: "a", type: "t", dma: { maxAddress: -5 }, registers }),
    /maxAddress/,
  );
  assert.throws(
    () => m.attach({ name: "a", type: "t", dma, registers: {} as typeof registers }),
    /read32/,
  );
  assert.equal(m.bus.windows().length, 0);
  m.attach({ name: "a", type: "t", dma, registers });
  assert.throws(
    () => m.attach({ name: "a", type: "t", dma, registers }),
    (e: unknown) => e instanceof MachineError && e.code === "EBUSY",
  );
  assert.throws(
    () => m.attach({ name: "b", type: "t", dma, registers }),
    (e: unknown) => e instanceof MachineError && e.code === "ENOSPC",
  );
  assert.equal(m.bus.windows().length, 1);
  assert.equal(m.devices.length, 1);
  m.check();
});

test("machine: a custom memory map with adjacent RAM regions gives adjacent slots", () => {
  const memmap = new MemoryMap([
    { base: 0, size: MiB, type: "ram", name: "a" },
    { base: MiB, size: MiB, type: "ram", name: "b" },
    { base: 16 * MiB, size: MiB, type: "mmio", name: "io" },
  ]);
  const m = createMachine({ memmap });
  assert.equal(m.preset, "custom");
  m.ram.write32(MiB - 2, 0xa1b2c3d4); // straddles the two slots
  assert.equal(m.ram.read32(MiB - 2), 0xa1b2c3d4);
  const a = m.attach({
    name: "d",
    type: "t",
    dma: { maxAddress: 2 * MiB - 1 },
    registers: { read32: () => 0, write32: () => {} },
  });
  assert.equal(a.window.base, 16 * MiB);
  assert.throws(() => createMachine({ memmap: new MemoryMap([]) }), /no RAM/);
  assert.throws(() => createMachine({ preset: "pc", ramSize: 1000 }), /ramSize/);
});
