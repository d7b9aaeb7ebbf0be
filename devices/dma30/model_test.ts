import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createMachine,
  FAULT_ACCESS,
  FAULT_DECODE,
  fnv1a,
  INT_DONE,
  INT_ERROR,
  type Machine,
  REG_FAULT_ADDR_LO,
  REG_FAULT_KIND,
  REG_FAULT_LEN,
  REG_ID,
  REG_IER,
  REG_ISR,
} from "../../machine/mod.ts";
import {
  CAP_CMD_CAPTURE,
  CAP_CMD_RESET,
  CAP_CMD_SCANOUT,
  CAP_ID,
  CAP_REG_CHECKSUM,
  CAP_REG_CMD,
  CAP_REG_FB_ADDR,
  CAP_REG_FB_ADDR_HI,
  CAP_REG_FRAME,
  CAP_REG_HEIGHT,
  CAP_REG_STATUS,
  CAP_REG_WIDTH,
  CAP_STATUS_BAD_COMMAND,
  CAP_STATUS_BAD_GEOMETRY,
  CAP_STATUS_DMA_FAULT,
  CAP_STATUS_OK,
} from "./reg.ts";
import { CaptureModel, capturePixel } from "./model.ts";

const MiB = 1024 * 1024, GiB = 1024 * MiB;

function setup() {
  // 2 GiB: RAM runs on past 1 GiB, so only the device's 30 bits keep it out.
  const m: Machine = createMachine({ preset: "pc", ramSize: 2 * GiB });
  const dev = new CaptureModel(m);
  const rd = (off: number) => m.bus.read32(dev.base + off);
  const wr = (off: number, v: number) => m.bus.write32(dev.base + off, v);
  const isrs: number[] = [];
  m.irq.establish(dev.irq.line, () => {
    const isr = rd(REG_ISR);
    isrs.push(isr);
    wr(REG_ISR, isr);
  });
  wr(REG_IER, INT_DONE | INT_ERROR);
  return { m, dev, rd, wr, isrs };
}

type Setup = ReturnType<typeof setup>;

function run(s: Setup, cmd: number, fb: number, w: number, h: number): number {
  s.wr(CAP_REG_FB_ADDR, fb);
  s.wr(CAP_REG_WIDTH, w);
  s.wr(CAP_REG_HEIGHT, h);
  s.wr(CAP_REG_CMD, cmd);
  s.m.irq.deliver();
  return s.rd(CAP_REG_STATUS);
}

test("dma30: capture writes the frame pattern into a 64 KiB-aligned buffer", () => {
  const s = setup();
  assert.equal(s.rd(REG_ID), CAP_ID);
  const fb = 0x3fe0_0000; // 2 MiB below 1 GiB
  assert.equal(run(s, CAP_CMD_CAPTURE, fb, 640, 480), CAP_STATUS_OK);
  assert.equal(run(s, CAP_CMD_CAPTURE, fb, 640, 480), CAP_STATUS_OK); // frame 1 over frame 0
  assert.equal(s.rd(CAP_REG_FRAME), 2);
  for (const [x, y] of [[0, 0], [639, 0], [300, 200], [639, 479]] as const) {
    assert.equal(s.m.ram.read32(fb + (y * 640 + x) * 4), capturePixel(x, y, 1), `${x},${y}`);
  }
  assert.equal(s.m.ram.read32(fb + 640 * 480 * 4), 0); // nothing past the frame
  assert.deepEqual(s.isrs, [INT_DONE, INT_DONE]);
  // Scanout reads it back and hashes it.
  const frame = new Uint8Array(640 * 480 * 4);
  s.m.ram.read(fb, frame);
  assert.equal(run(s, CAP_CMD_SCANOUT, fb, 640, 480), CAP_STATUS_OK);
  assert.equal(s.rd(CAP_REG_CHECKSUM), fnv1a(frame));
  // The largest frame (16 MiB) ending exactly at 1 GiB.
  assert.equal(run(s, CAP_CMD_CAPTURE, GiB - 16 * MiB, 2048, 2048), CAP_STATUS_OK);
  assert.equal(s.m.ram.read32(GiB - 4), capturePixel(2047, 2047, 2));
  s.m.check();
});

test("dma30: a buffer outside the 30-bit, 64 KiB-aligned window is a recorded fault, nothing written", () => {
  const cases: [string, number, number, number, number][] = [
    // what, address, width, height, fault kind
    ["unaligned", 0x1000_8000, 64, 64, FAULT_ACCESS],
    ["at 1 GiB", GiB, 64, 64, FAULT_ACCESS],
    ["crossing 1 GiB", GiB - 65536, 128, 256, FAULT_ACCESS],
    ["in the legacy hole", 0xa_0000, 16, 16, FAULT_DECODE],
  ];
  for (const [what, fb, w, h, kind] of cases) {
    const s = setup();
    s.m.ram.fill(GiB, 65536, 0x77);
    const touched = s.m.ram.touchedBytes();
    for (const cmd of [CAP_CMD_CAPTURE, CAP_CMD_SCANOUT]) {
      assert.equal(run(s, cmd, fb, w, h), CAP_STATUS_DMA_FAULT, what);
      assert.equal(s.rd(REG_FAULT_KIND), kind, what);
      assert.equal(s.rd(REG_FAULT_ADDR_LO), fb, what);
      assert.equal(s.rd(REG_FAULT_LEN), w * h * 4, what);
    }
    assert.deepEqual(s.isrs, [INT_ERROR, INT_ERROR], what);
    assert.equal(s.rd(CAP_REG_FRAME), 0, what);
    assert.equal(s.dev.dma.faults, 2, what);
    assert.equal(s.m.ram.touchedBytes(), touched, what);
    assert.equal(s.m.ram.read32(GiB), 0x77777777, what);
    assert.equal(s.m.ram.read32(GiB - 65536), 0, what);
  }
});

test("dma30: bad geometry and commands; reset", () => {
  const s = setup();
  assert.equal(run(s, CAP_CMD_CAPTURE, 0x100_0000, 0, 10), CAP_STATUS_BAD_GEOMETRY);
  assert.equal(run(s, CAP_CMD_CAPTURE, 0x100_0000, 2049, 10), CAP_STATUS_BAD_GEOMETRY);
  assert.equal(run(s, 7, 0x100_0000, 10, 10), CAP_STATUS_BAD_COMMAND);
  assert.equal(s.dev.dma.faults, 0);
  assert.equal(s.m.ram.read32(0x100_0000), 0);
  assert.deepEqual(s.isrs, [INT_ERROR, INT_ERROR, INT_ERROR]);
  assert.equal(run(s, CAP_CMD_CAPTURE, 0x100_0000, 1, 1), CAP_STATUS_OK);
  s.wr(CAP_REG_CMD, CAP_CMD_RESET);
  assert.equal(s.rd(CAP_REG_FRAME), 0);
  assert.equal(s.rd(CAP_REG_FB_ADDR), 0);
  assert.equal(s.rd(REG_IER), 0);
  assert.equal(capturePixel(0x1ff, 0x102, 0x303), 0xff0302ff);
});

test("dma30: FB_ADDR_HI holds the high word: a buffer above 4 GiB faults, nothing written", () => {
  const s = setup();
  s.wr(CAP_REG_FB_ADDR_HI, 1);
  assert.equal(s.rd(CAP_REG_FB_ADDR_HI), 1);
  const faults = s.dev.dma.faults;
  assert.equal(run(s, CAP_CMD_CAPTURE, 0x100_0000, 4, 4), CAP_STATUS_DMA_FAULT);
  assert.equal(s.dev.dma.faults, faults + 1);
  assert.equal(s.dev.dma.lastFault!.addr, 2 ** 32 + 0x100_0000);
  assert.equal(s.m.ram.read32(0x100_0000), 0, "nothing landed at the low 32 bits' address");
});
