import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createMachine,
  FAULT_ACCESS,
  FAULT_DECODE,
  FAULT_NONE,
  fnv1a,
  INT_DONE,
  INT_ERROR,
  type Machine,
  REG_FAULT_ADDR_HI,
  REG_FAULT_ADDR_LO,
  REG_FAULT_COUNT,
  REG_FAULT_KIND,
  REG_FAULT_LEN,
  REG_ID,
  REG_IER,
  REG_ISR,
} from "../../machine/mod.ts";
import {
  ISA_CMD_FILL,
  ISA_CMD_PLAY,
  ISA_CMD_RECORD,
  ISA_CMD_RESET,
  ISA_ID,
  ISA_REG_ADDR,
  ISA_REG_ADDR_HI,
  ISA_REG_CHECKSUM,
  ISA_REG_CMD,
  ISA_REG_COUNT,
  ISA_REG_PATTERN,
  ISA_REG_STATUS,
  ISA_REG_TRANSFERS,
  ISA_STATUS_BAD_COMMAND,
  ISA_STATUS_DMA_FAULT,
  ISA_STATUS_OK,
} from "./reg.ts";
import { IsaDmaModel } from "./model.ts";

const MiB = 1024 * 1024;

function setup(preset: "isa" | "pc" = "isa") {
  const m: Machine = createMachine({ preset, ramSize: preset === "pc" ? 64 * MiB : undefined });
  const dev = new IsaDmaModel(m);
  const rd = (off: number) => m.bus.read32(dev.base + off);
  const wr = (off: number, v: number) => m.bus.write32(dev.base + off, v);
  const irqs: number[] = [];
  m.irq.establish(dev.irq.line, () => {
    const isr = rd(REG_ISR);
    irqs.push(isr);
    wr(REG_ISR, isr); // acknowledge
  });
  wr(REG_IER, INT_DONE | INT_ERROR);
  return { m, dev, rd, wr, irqs };
}

/** Programs and runs one command; returns STATUS. */
function run(
  s: ReturnType<typeof setup>,
  cmd: number,
  addr: number,
  count: number,
): number {
  s.wr(ISA_REG_ADDR, addr);
  s.wr(ISA_REG_COUNT, count);
  s.wr(ISA_REG_CMD, cmd);
  s.m.irq.deliver();
  return s.rd(ISA_REG_STATUS);
}

test("isa: FILL writes the pattern into memory and interrupts on completion", () => {
  const s = setup();
  assert.equal(s.rd(REG_ID), ISA_ID);
  assert.equal(s.m.device("isa0")?.type, "isadma");
  s.wr(ISA_REG_PATTERN, 0xf0);
  assert.equal(run(s, ISA_CMD_FILL, 0x12_0000 + 0x10, 0xfff0), ISA_STATUS_OK);
  assert.deepEqual(s.irqs, [INT_DONE]);
  assert.equal(s.m.ram.read8(0x12_0010), 0xf0);
  assert.equal(s.m.ram.read8(0x12_0011), 0xf1);
  assert.equal(s.m.ram.read8(0x12_0010 + 0x20), 0x10);
  assert.equal(s.m.ram.read8(0x12_ffff), (0xf0 + 0xffef) & 0xff);
  assert.equal(s.m.ram.read8(0x12_000f), 0); // nothing before ADDR
  assert.equal(s.rd(ISA_REG_TRANSFERS), 1);
  assert.equal(s.dev.irq.asserted, false);
  s.m.check();
});

test("isa: PLAY reads a buffer (checksum) and RECORD writes it back elsewhere", () => {
  const s = setup();
  const data = new Uint8Array(65536);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  s.m.ram.write(0x30_0000, data);
  assert.equal(run(s, ISA_CMD_PLAY, 0x30_0000, 65536), ISA_STATUS_OK);
  assert.equal(s.rd(ISA_REG_CHECKSUM), fnv1a(data));
  assert.equal(run(s, ISA_CMD_RECORD, 0xa0_0000, 1000), ISA_STATUS_OK);
  const back = new Uint8Array(1000);
  s.m.ram.read(0xa0_0000, back);
  assert.deepEqual(back, data.subarray(0, 1000));
  assert.equal(s.m.ram.read8(0xa0_0000 + 1000), 0);
  assert.deepEqual(s.irqs, [INT_DONE, INT_DONE]);
  assert.equal(s.dev.dma.bytes, 66536);
});

test("isa: programming past the 8237's reach is a recorded DMA fault and writes nothing", () => {
  const s = setup("pc"); // RAM goes on past 16 MiB: only the device's limit stops it
  const touched = s.m.ram.touchedBytes();
  const cases: [number, number, number, number][] = [
    // addr, count, expected FAULT_KIND, expected fault address
    [16 * MiB, 16, FAULT_ACCESS, 16 * MiB], // beyond 24 bits
    [16 * MiB - 8, 16, FAULT_ACCESS, 16 * MiB - 8], // runs past 16 MiB
    [0x2_fff0, 32, FAULT_ACCESS, 0x2_fff0], // crosses a 64 KiB boundary
    [0x20_0000, 0, FAULT_ACCESS, 0x20_0000], // empty
    [0x20_0000, 65537, FAULT_ACCESS, 0x20_0000], // longer than the FIFO
    [0xa_0000, 16, FAULT_DECODE, 0xa_0000], // the legacy video hole is not RAM
  ];
  let faults = 0;
  for (const [addr, count, kind, at] of cases) {
    for (const cmd of [ISA_CMD_FILL, ISA_CMD_RECORD, ISA_CMD_PLAY]) {
      assert.equal(run(s, cmd, addr, count), ISA_STATUS_DMA_FAULT, `${cmd} ${addr}+${count}`);
      faults++;
      assert.equal(s.rd(REG_FAULT_KIND), kind);
      assert.equal(s.rd(REG_FAULT_ADDR_LO), at);
      assert.equal(s.rd(REG_FAULT_ADDR_HI), 0);
      assert.equal(s.rd(REG_FAULT_LEN), count);
      assert.equal(s.rd(REG_FAULT_COUNT), faults);
      assert.equal(s.irqs.at(-1), INT_ERROR);
    }
  }
  assert.equal(s.m.ram.touchedBytes(), touched);
  assert.equal(s.m.ram.read32(16 * MiB), 0);
  assert.equal(s.rd(ISA_REG_TRANSFERS), 0);
  s.wr(REG_FAULT_KIND, 0); // acknowledge the fault
  assert.equal(s.rd(REG_FAULT_KIND), FAULT_NONE);
  assert.equal(s.rd(REG_FAULT_ADDR_LO), 0);
  assert.equal(s.rd(REG_FAULT_COUNT), faults);
  // The largest legal transfer right below 16 MiB works.
  assert.equal(run(s, ISA_CMD_FILL, 16 * MiB - 65536, 65536), ISA_STATUS_OK);
  assert.equal(s.m.ram.read8(16 * MiB - 1), 0xff);
});

test("isa: bad commands, interrupt enables and reset", () => {
  const s = setup();
  s.wr(REG_IER, 0);
  assert.equal(run(s, 9, 0x20_0000, 16), ISA_STATUS_BAD_COMMAND);
  assert.deepEqual(s.irqs, []); // masked by IER
  assert.equal(s.rd(REG_ISR), INT_ERROR);
  assert.equal(s.dev.irq.asserted, false);
  s.wr(REG_IER, INT_ERROR);
  assert.equal(s.dev.irq.asserted, true);
  s.m.irq.deliver();
  assert.deepEqual(s.irqs, [INT_ERROR]);
  assert.equal(s.rd(REG_ISR), 0);
  s.wr(ISA_REG_PATTERN, 5);
  s.wr(ISA_REG_CMD, ISA_CMD_RESET);
  assert.equal(s.rd(ISA_REG_PATTERN), 0);
  assert.equal(s.rd(REG_IER), 0);
  assert.equal(s.dev.dma.faults, 0);
  s.m.check();
});

test("isa: ADDR_HI holds the high word: an address above 4 GiB faults instead of wrapping", () => {
  const s = setup("isa");
  s.m.ram.fill(0x2_0000, 256, 0x5a);
  s.wr(ISA_REG_ADDR_HI, 1);
  assert.equal(s.rd(ISA_REG_ADDR_HI), 1);
  const faults = s.dev.dma.faults;
  // 4 GiB + 0x20000: a wrapping channel would play the bytes at 0x20000.
  assert.equal(run(s, ISA_CMD_PLAY, 0x2_0000, 256), ISA_STATUS_DMA_FAULT);
  assert.equal(s.dev.dma.faults, faults + 1);
  assert.equal(s.dev.dma.lastFault!.addr, 2 ** 32 + 0x2_0000);
  assert.equal(s.rd(ISA_REG_CHECKSUM), 0);
  s.wr(ISA_REG_ADDR_HI, 0);
  assert.equal(run(s, ISA_CMD_PLAY, 0x2_0000, 256), ISA_STATUS_OK);
});
