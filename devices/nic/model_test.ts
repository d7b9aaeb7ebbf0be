import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createMachine,
  FAULT_ACCESS,
  FAULT_DECODE,
  INT_DONE,
  INT_ERROR,
  REG_FAULT_ADDR_HI,
  REG_FAULT_ADDR_LO,
  REG_FAULT_KIND,
  REG_ID,
  REG_IER,
  REG_ISR,
} from "../../machine/mod.ts";
import {
  DESC_ADDR_HI,
  DESC_ADDR_LO,
  DESC_DD,
  DESC_EOP,
  DESC_FLAGS,
  DESC_LEN,
  DESC_SIZE,
  NIC_CTRL_LOOPBACK,
  NIC_CTRL_RESET,
  NIC_CTRL_RX_EN,
  NIC_CTRL_TX_EN,
  NIC_ID,
  NIC_INT_RX,
  NIC_INT_RX_NOBUF,
  NIC_REG_CTRL,
  NIC_REG_RX_BASE,
  NIC_REG_RX_COUNT,
  NIC_REG_RX_DROPS,
  NIC_REG_RX_FRAMES,
  NIC_REG_RX_HEAD,
  NIC_REG_RX_TAIL,
  NIC_REG_STATUS,
  NIC_REG_TX_BASE,
  NIC_REG_TX_BASE_HI,
  NIC_REG_TX_COUNT,
  NIC_REG_TX_FRAMES,
  NIC_REG_TX_HEAD,
  NIC_REG_TX_TAIL,
  NIC_STATUS_BAD_RING,
  NIC_STATUS_DMA_FAULT,
  NIC_STATUS_OK,
  NIC_STATUS_TOO_MANY_SEGMENTS,
} from "./reg.ts";
import { NicModel } from "./model.ts";

const MiB = 1024 * 1024, GiB = 1024 * MiB;
const TX_RING = 0x10_0000, RX_RING = 0x10_1000;
const RX_BUF = 0x40_0000; // receive buffers: 2 KiB each, one per descriptor

function setup(rxBufSize = 2048, count = 8, synchronous = true) {
  // 5 GiB: RAM above 4 GiB exists, so only the card's 32-bit limit keeps it out.
  const m = createMachine({ preset: "pc", ramSize: 5 * GiB });
  const nic = new NicModel(m, { synchronous });
  const rd = (off: number) => m.bus.read32(nic.base + off);
  const wr = (off: number, v: number) => m.bus.write32(nic.base + off, v);
  const isrs: number[] = [];
  m.irq.establish(nic.irq.line, () => {
    const isr = rd(REG_ISR);
    isrs.push(isr);
    wr(REG_ISR, isr);
  });
  wr(REG_IER, 0xf);
  wr(NIC_REG_TX_BASE, TX_RING);
  wr(NIC_REG_TX_COUNT, count);
  wr(NIC_REG_RX_BASE, RX_RING);
  wr(NIC_REG_RX_COUNT, count);
  for (let i = 0; i < count; i++) setDesc(m, RX_RING, i, RX_BUF + i * 4096, rxBufSize, 0);
  wr(NIC_REG_RX_TAIL, count - 1); // all but one: a full ring keeps one slot empty
  wr(NIC_REG_CTRL, NIC_CTRL_TX_EN | NIC_CTRL_RX_EN | NIC_CTRL_LOOPBACK);
  return { m, nic, rd, wr, isrs };
}

function setDesc(
  m: ReturnType<typeof createMachine>,
  ring: number,
  i: number,
  addr: number,
  len: number,
  flags: number,
): void {
  const pa = ring + i * DESC_SIZE;
  m.ram.write32(pa + DESC_ADDR_LO, addr % 2 ** 32);
  m.ram.write32(pa + DESC_ADDR_HI, Math.floor(addr / 2 ** 32));
  m.ram.write32(pa + DESC_LEN, len);
  m.ram.write32(pa + DESC_FLAGS, flags);
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed * 101) & 0xff;
  return b;
}

/** Places a frame of `parts` (each its own buffer) at TX descriptors from `first`. */
function postFrame(
  s: ReturnType<typeof setup>,
  first: number,
  parts: Uint8Array[],
  at: number,
): number {
  let i = first, addr = at;
  parts.forEach((p, k) => {
    s.m.ram.write(addr, p);
    setDesc(s.m, TX_RING, i % 8, addr, p.length, k === parts.length - 1 ? DESC_EOP : 0);
    addr += 8192;
    i++;
  });
  return i % 8;
}

function received(s: ReturnType<typeof setup>, from: number, n: number): Uint8Array {
  const out: number[] = [];
  for (let i = from; i < from + n; i++) {
    const d = RX_RING + (i % 8) * DESC_SIZE;
    const len = s.m.ram.read32(d + DESC_LEN);
    const buf = new Uint8Array(len);
    s.m.ram.read(s.m.ram.read32(d + DESC_ADDR_LO), buf);
    out.push(...buf);
  }
  return new Uint8Array(out);
}

test("nic: a three-segment frame is sent and looped back into three receive buffers", () => {
  const s = setup();
  assert.equal(s.rd(REG_ID), NIC_ID);
  const parts = [bytes(100, 1), bytes(4096, 2), bytes(2000, 3)];
  const tail = postFrame(s, 0, parts, 0x20_0000);
  s.wr(NIC_REG_TX_TAIL, tail);
  s.m.irq.deliver();
  assert.deepEqual(s.isrs, [INT_DONE | NIC_INT_RX]);
  assert.equal(s.rd(NIC_REG_TX_HEAD), 3);
  assert.equal(s.rd(NIC_REG_TX_FRAMES), 1);
  assert.equal(s.rd(NIC_REG_RX_FRAMES), 1);
  // 6196 bytes over 2048-byte buffers: 2048, 2048, 2048, 52.
  assert.equal(s.rd(NIC_REG_RX_HEAD), 4);
  const lens = [0, 1, 2, 3].map((i) => s.m.ram.read32(RX_RING + i * DESC_SIZE + DESC_LEN));
  assert.deepEqual(lens, [2048, 2048, 2048, 52]);
  const flags = [0, 1, 2, 3].map((i) => s.m.ram.read32(RX_RING + i * DESC_SIZE + DESC_FLAGS));
  assert.deepEqual(flags, [DESC_DD, DESC_DD, DESC_DD, (DESC_DD | DESC_EOP) >>> 0]);
  const txFlags = [0, 1, 2].map((i) => s.m.ram.read32(TX_RING + i * DESC_SIZE + DESC_FLAGS));
  assert.deepEqual(txFlags, [DESC_DD, DESC_DD, (DESC_DD | DESC_EOP) >>> 0]);
  const want = new Uint8Array([...parts[0]!, ...parts[1]!, ...parts[2]!]);
  assert.deepEqual(received(s, 0, 4), want);
  assert.equal(s.m.ram.read8(RX_BUF + 3 * 4096 + 52), 0); // nothing past the frame
  assert.equal(s.rd(NIC_REG_STATUS), NIC_STATUS_OK);
  s.m.check();
});

test("nic: frames wait for their EOP, and the rings wrap", () => {
  const s = setup(4096);
  let tx = 0, rxHead = 0;
  for (let f = 0; f < 12; f++) {
    const parts = [bytes(60 + f, f), bytes(40, f + 50)];
    const next = postFrame(s, tx, parts, 0x20_0000 + (f % 2) * 0x10000);
    s.wr(NIC_REG_TX_TAIL, (tx + 1) % 8); // only the first descriptor: no EOP yet
    assert.equal(s.rd(NIC_REG_TX_HEAD), tx);
    assert.equal(s.rd(NIC_REG_TX_FRAMES), f);
    s.wr(NIC_REG_TX_TAIL, next);
    assert.equal(s.rd(NIC_REG_TX_HEAD), next);
    assert.equal(s.rd(NIC_REG_RX_FRAMES), f + 1);
    assert.deepEqual(received(s, rxHead, 1), new Uint8Array([...parts[0]!, ...parts[1]!]));
    // The driver recycles the receive descriptor and hands it back.
    setDesc(s.m, RX_RING, rxHead % 8, RX_BUF + (rxHead % 8) * 4096, 4096, 0);
    s.wr(NIC_REG_RX_TAIL, (s.rd(NIC_REG_RX_TAIL) + 1) % 8);
    rxHead++;
    tx = next;
  }
  assert.equal(s.rd(NIC_REG_RX_HEAD), 12 % 8);
  assert.equal(s.rd(NIC_REG_RX_DROPS), 0);
});

test("nic: with no receive descriptors left the frame is dropped and counted", () => {
  const s = setup(2048);
  s.wr(NIC_REG_RX_TAIL, 1); // one 2 KiB buffer
  s.wr(NIC_REG_TX_TAIL, postFrame(s, 0, [bytes(3000, 1)], 0x20_0000));
  s.m.irq.deliver();
  assert.equal(s.rd(NIC_REG_TX_FRAMES), 1);
  assert.equal(s.rd(NIC_REG_RX_DROPS), 1);
  assert.equal(s.rd(NIC_REG_RX_HEAD), 0);
  assert.equal(s.m.ram.read32(RX_BUF), 0); // nothing was written
  assert.deepEqual(s.isrs, [INT_DONE | NIC_INT_RX_NOBUF]);
  s.wr(NIC_REG_CTRL, NIC_CTRL_TX_EN | NIC_CTRL_LOOPBACK); // receive off: dropped as well
  s.wr(NIC_REG_TX_TAIL, postFrame(s, 1, [bytes(10, 1)], 0x20_0000));
  assert.equal(s.rd(NIC_REG_RX_DROPS), 2);
});

test("nic: out-of-constraint programming is a recorded DMA fault that writes nothing", () => {
  type Case = [string, (s: ReturnType<typeof setup>) => void, number, number, number?];
  const cases: Case[] = [
    [
      "buffer above 4 GiB",
      (s) => {
        postFrame(s, 0, [bytes(64, 1)], 0x20_0000);
        setDesc(s.m, TX_RING, 0, 4 * GiB + 0x1000, 64, DESC_EOP);
        s.wr(NIC_REG_TX_TAIL, 1);
      },
      NIC_STATUS_DMA_FAULT,
      FAULT_ACCESS,
      4 * GiB + 0x1000,
    ],
    [
      "buffer straddling 4 GiB",
      (s) => {
        setDesc(s.m, TX_RING, 0, 4 * GiB - 32, 64, DESC_EOP);
        s.wr(NIC_REG_TX_TAIL, 1);
      },
      NIC_STATUS_DMA_FAULT,
      FAULT_ACCESS,
      4 * GiB - 32,
    ],
    [
      "buffer in the MMIO hole",
      (s) => {
        setDesc(s.m, TX_RING, 0, 3 * GiB + 0x10_0000, 64, DESC_EOP);
        s.wr(NIC_REG_TX_TAIL, 1);
      },
      NIC_STATUS_DMA_FAULT,
      FAULT_DECODE,
      3 * GiB + 0x10_0000,
    ],
    [
      "segment longer than 4 KiB",
      (s) => {
        setDesc(s.m, TX_RING, 0, 0x20_0000, 4097, DESC_EOP);
        s.wr(NIC_REG_TX_TAIL, 1);
      },
      NIC_STATUS_DMA_FAULT,
      FAULT_ACCESS,
      0x20_0000,
    ],
    [
      "nine descriptors in one frame",
      (s) => {
        s.wr(NIC_REG_TX_COUNT, 16);
        s.wr(NIC_REG_CTRL, NIC_CTRL_TX_EN | NIC_CTRL_RX_EN | NIC_CTRL_LOOPBACK);
        for (let i = 0; i < 9; i++) setDesc(s.m, TX_RING, i, 0x20_0000, 10, i === 8 ? DESC_EOP : 0);
        s.wr(NIC_REG_TX_TAIL, 9);
      },
      NIC_STATUS_TOO_MANY_SEGMENTS,
      FAULT_ACCESS,
    ],
    [
      "transmit ring not 128-byte aligned",
      (s) => {
        s.wr(NIC_REG_TX_BASE, TX_RING + 64);
        s.wr(NIC_REG_TX_COUNT, 8);
        setDesc(s.m, TX_RING + 64, 0, 0x20_0000, 10, DESC_EOP);
        s.wr(NIC_REG_TX_TAIL, 1);
      },
      NIC_STATUS_BAD_RING,
      FAULT_ACCESS,
      TX_RING + 64,
    ],
    [
      "transmit ring of 12 descriptors",
      (s) => {
        s.wr(NIC_REG_TX_COUNT, 12);
        s.wr(NIC_REG_TX_TAIL, 1);
      },
      NIC_STATUS_BAD_RING,
      FAULT_ACCESS,
    ],
    [
      "receive buffer above 4 GiB",
      (s) => {
        setDesc(s.m, RX_RING, 1, 5 * GiB - 4096, 2048, 0);
        s.wr(NIC_REG_TX_TAIL, postFrame(s, 0, [bytes(3000, 7)], 0x20_0000));
      },
      NIC_STATUS_DMA_FAULT,
      FAULT_ACCESS,
      5 * GiB - 4096,
    ],
    [
      "receive ring not aligned",
      (s) => {
        s.wr(NIC_REG_RX_BASE, RX_RING + 16);
        s.wr(NIC_REG_RX_COUNT, 8);
        s.wr(NIC_REG_RX_TAIL, 7);
        s.wr(NIC_REG_TX_TAIL, postFrame(s, 0, [bytes(30, 7)], 0x20_0000));
      },
      NIC_STATUS_BAD_RING,
      FAULT_ACCESS,
      RX_RING + 16,
    ],
  ];
  for (const [what, program, status, kind, addr] of cases) {
    const s = setup();
    const rxBefore = new Uint8Array(16 * 4096);
    s.m.ram.read(RX_BUF, rxBefore);
    const ringBefore = new Uint8Array(256);
    s.m.ram.read(RX_RING, ringBefore);
    program(s);
    s.m.irq.deliver();
    assert.equal(s.rd(NIC_REG_STATUS), status, what);
    assert.equal(s.rd(REG_FAULT_KIND), kind, what);
    if (addr !== undefined) {
      assert.equal(s.rd(REG_FAULT_ADDR_LO) + s.rd(REG_FAULT_ADDR_HI) * 2 ** 32, addr, what);
    }
    assert.ok(s.isrs.at(-1)! & INT_ERROR, what);
    assert.equal(s.nic.dma.faults, 1, what);
    assert.equal(s.rd(NIC_REG_RX_FRAMES), 0, what);
    assert.equal(s.rd(NIC_REG_RX_HEAD), 0, what);
    const rxAfter = new Uint8Array(16 * 4096);
    s.m.ram.read(RX_BUF, rxAfter);
    assert.deepEqual(rxAfter, rxBefore, `${what}: receive buffers untouched`);
    const ringAfter = new Uint8Array(256);
    s.m.ram.read(RX_RING, ringAfter);
    if (!what.startsWith("receive buffer")) {
      assert.deepEqual(ringAfter, ringBefore, `${what}: receive ring untouched`);
    }
    assert.equal(s.m.ram.read32(4 * GiB), 0, what);
    assert.equal(s.m.ram.read32(4 * GiB + 0x1000), 0, what);
    if (what.startsWith("receive")) {
      assert.equal(s.rd(NIC_REG_TX_FRAMES), 1, what); // sent, but not received
    } else {
      assert.equal(s.rd(NIC_REG_TX_HEAD), 0, `${what}: the frame stays posted`);
      assert.equal(s.m.ram.read32(TX_RING + DESC_FLAGS) & DESC_DD, 0, what);
    }
    s.m.check();
  }
});

test("nic: reset clears the rings, counters and interrupt state", () => {
  const s = setup();
  s.wr(NIC_REG_TX_TAIL, postFrame(s, 0, [bytes(10, 1)], 0x20_0000));
  assert.equal(s.rd(NIC_REG_TX_FRAMES), 1);
  s.wr(NIC_REG_CTRL, NIC_CTRL_RESET);
  assert.equal(s.rd(NIC_REG_CTRL), 0);
  assert.equal(s.rd(NIC_REG_TX_FRAMES), 0);
  assert.equal(s.rd(NIC_REG_TX_BASE), 0);
  assert.equal(s.rd(REG_ISR), 0);
  assert.equal(s.nic.irq.asserted, false);
  // Transmit disabled: a doorbell does nothing.
  s.wr(NIC_REG_TX_BASE, TX_RING);
  s.wr(NIC_REG_TX_COUNT, 8);
  s.wr(NIC_REG_TX_TAIL, 1);
  assert.equal(s.rd(NIC_REG_TX_HEAD), 0);
});

test("nic: by default the card works later, on the clock; a reset drops the queued work", async () => {
  const s = setup(2048, 8, false);
  const { m, nic, rd, wr, isrs } = s;
  const frame = bytes(1500, 3);
  postFrame(s, 0, [frame], 0x50_0000);
  wr(NIC_REG_TX_TAIL, 1);
  assert.equal(rd(NIC_REG_TX_HEAD), 0, "nothing was sent inside the store");
  assert.equal(nic.dma.inFlight, 1);
  assert.equal(m.clock.run(), 1);
  assert.equal(rd(NIC_REG_TX_HEAD), 1);
  assert.deepEqual(isrs, [INT_DONE | NIC_INT_RX], "sent and looped back in one piece of work");
  assert.deepEqual(received(s, 0, 1), frame);
  // A doorbell, then a reset before the card got to it: the work is dropped.
  postFrame(s, 1, [frame], 0x50_0000);
  wr(NIC_REG_TX_TAIL, 2);
  wr(NIC_REG_CTRL, NIC_CTRL_RESET);
  assert.equal(nic.dma.inFlight, 1);
  assert.equal(m.clock.run(), 1);
  assert.equal(nic.dma.inFlight, 0);
  assert.equal(rd(NIC_REG_TX_FRAMES), 0);
  assert.equal(isrs.length, 1);
  // Once reprogrammed, the work of a new doorbell runs by itself.
  const again = setup(2048, 8, false);
  postFrame(again, 0, [frame], 0x50_0000);
  again.wr(NIC_REG_TX_TAIL, 1);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(again.rd(NIC_REG_TX_FRAMES), 1);
  m.check();
  again.m.check();
});

test("nic: a ring whose high address word is set is beyond the card: a fault, nothing read", () => {
  const s = setup();
  const frame = bytes(100, 1);
  // The same ring 4 GiB higher (RAM is there on this 5 GiB machine).
  s.m.ram.write(4 * GiB + TX_RING, new Uint8Array(16));
  postFrame(s, 0, [frame], 0x50_0000);
  s.wr(NIC_REG_TX_BASE_HI, 1);
  assert.equal(s.rd(NIC_REG_TX_BASE_HI), 1);
  const faults = s.nic.dma.faults;
  s.wr(NIC_REG_TX_TAIL, 1);
  s.m.irq.deliver();
  assert.equal(s.nic.dma.faults, faults + 1);
  assert.equal(s.rd(NIC_REG_STATUS), NIC_STATUS_DMA_FAULT);
  assert.match(s.nic.dma.lastFault!.reason, /reaches past the device's last address 0xffffffff/);
  assert.equal(s.nic.dma.lastFault!.addr, 4 * GiB + TX_RING);
  assert.equal(s.rd(NIC_REG_TX_HEAD), 0);
});
