import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createMachine,
  FAULT_ACCESS,
  FAULT_DECODE,
  INT_DONE,
  INT_ERROR,
  type Machine,
  REG_FAULT_ADDR_HI,
  REG_FAULT_ADDR_LO,
  REG_FAULT_KIND,
  REG_ID,
  REG_IER,
  REG_ISR,
} from "../../machine/mod.ts";
import {
  NVME_ID,
  NVME_MDTS,
  NVME_OP_FLUSH,
  NVME_OP_READ,
  NVME_OP_WRITE,
  NVME_REG_BLOCK_SIZE,
  NVME_REG_BLOCKS_HI,
  NVME_REG_BLOCKS_LO,
  NVME_REG_CID,
  NVME_REG_COUNT,
  NVME_REG_CQ_CID,
  NVME_REG_CQ_COUNT,
  NVME_REG_CQ_STATUS,
  NVME_REG_DOORBELL,
  NVME_REG_LBA_HI,
  NVME_REG_LBA_LO,
  NVME_REG_MDTS,
  NVME_REG_OPCODE,
  NVME_REG_PRP1_HI,
  NVME_REG_PRP1_LO,
  NVME_REG_PRP2_HI,
  NVME_REG_PRP2_LO,
  NVME_SC_DATA_TRANSFER_ERROR,
  NVME_SC_INVALID_FIELD,
  NVME_SC_INVALID_OPCODE,
  NVME_SC_LBA_OUT_OF_RANGE,
  NVME_SC_PRP_OFFSET_INVALID,
  NVME_SC_SUCCESS,
} from "./reg.ts";
import { NVME_LATENCY, NvmeModel, SparseDisk } from "./model.ts";

const MiB = 1024 * 1024, GiB = 1024 * MiB;
const PAGE = 4096;

function setup(preset: "pc" | "big" = "pc", blockSize = 4096) {
  const m: Machine = createMachine({ preset });
  const dev = new NvmeModel(m, { blockSize, blocks: 1 << 20, synchronous: true });
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

function cmd(s: Setup, op: number, lba: number, count: number, prp1: number, prp2 = 0): number {
  const w64 = (lo: number, hi: number, v: number) => {
    s.wr(lo, v % 2 ** 32);
    s.wr(hi, Math.floor(v / 2 ** 32));
  };
  s.wr(NVME_REG_OPCODE, op);
  w64(NVME_REG_LBA_LO, NVME_REG_LBA_HI, lba);
  s.wr(NVME_REG_COUNT, count);
  w64(NVME_REG_PRP1_LO, NVME_REG_PRP1_HI, prp1);
  w64(NVME_REG_PRP2_LO, NVME_REG_PRP2_HI, prp2);
  s.wr(NVME_REG_DOORBELL, 1);
  s.m.irq.deliver();
  return s.rd(NVME_REG_CQ_STATUS);
}

/** Writes PRP list entries at `at` (8 bytes each). */
function list(m: Machine, at: number, entries: number[]): void {
  entries.forEach((e, i) => m.ram.write64n(at + 8 * i, e));
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 31 + (i >> 9)) & 0xff;
  return b;
}

/** Scatters `data` over `pieces` ([address, length]) in RAM. */
function scatter(m: Machine, pieces: [number, number][], data: Uint8Array): void {
  let o = 0;
  for (const [a, l] of pieces) {
    m.ram.write(a, data.subarray(o, o + l));
    o += l;
  }
}

function gather(m: Machine, pieces: [number, number][]): Uint8Array {
  const total = pieces.reduce((t, [, l]) => t + l, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const [a, l] of pieces) {
    m.ram.read(a, out, o, l);
    o += l;
  }
  return out;
}

function diskBytes(s: Setup, lba: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  s.dev.disk.read(lba * s.dev.disk.blockSize, b, 0, n);
  return b;
}

test("nvme: identity registers describe the disk", () => {
  const s = setup();
  assert.equal(s.rd(REG_ID), NVME_ID);
  assert.equal(s.rd(NVME_REG_BLOCK_SIZE), 4096);
  assert.equal(s.rd(NVME_REG_BLOCKS_LO), 1 << 20);
  assert.equal(s.rd(NVME_REG_BLOCKS_HI), 0);
  assert.equal(s.rd(NVME_REG_MDTS), NVME_MDTS);
  s.wr(NVME_REG_CID, 77);
  assert.equal(cmd(s, NVME_OP_FLUSH, 0, 0, 0), NVME_SC_SUCCESS);
  assert.equal(s.rd(NVME_REG_CQ_CID), 77);
  assert.equal(s.rd(NVME_REG_CQ_COUNT), 1);
  assert.deepEqual(s.isrs, [INT_DONE]);
});

test("nvme: one page, two pages (PRP2) and a PRP list round-trip through the disk", () => {
  const s = setup();
  // One page.
  const one = pattern(PAGE, 1);
  s.m.ram.write(0x20_0000, one);
  assert.equal(cmd(s, NVME_OP_WRITE, 5, 1, 0x20_0000), NVME_SC_SUCCESS);
  assert.deepEqual(diskBytes(s, 5, PAGE), one);
  // Two pages, out of order in memory.
  const two = pattern(2 * PAGE, 2);
  scatter(s.m, [[0x31_0000, PAGE], [0x30_0000, PAGE]], two);
  assert.equal(cmd(s, NVME_OP_WRITE, 10, 2, 0x31_0000, 0x30_0000), NVME_SC_SUCCESS);
  assert.deepEqual(diskBytes(s, 10, 2 * PAGE), two);
  // Five pages through a list; PRP1 starts the data.
  const pages = [0x40_0000, 0x45_0000, 0x41_0000, 0x48_0000, 0x42_0000];
  const five = pattern(5 * PAGE, 3);
  scatter(s.m, pages.map((p) => [p, PAGE]), five);
  list(s.m, 0x50_0000 + 0x100, pages.slice(1));
  assert.equal(cmd(s, NVME_OP_WRITE, 100, 5, pages[0]!, 0x50_0100), NVME_SC_SUCCESS);
  assert.deepEqual(diskBytes(s, 100, 5 * PAGE), five);
  // Read it all back into other pages.
  const back = [0x60_0000, 0x61_3000, 0x66_0000, 0x62_0000, 0x63_0000];
  list(s.m, 0x51_0000, back.slice(1));
  assert.equal(cmd(s, NVME_OP_READ, 100, 5, back[0]!, 0x51_0000), NVME_SC_SUCCESS);
  assert.deepEqual(gather(s.m, back.map((p) => [p, PAGE])), five);
  assert.deepEqual(s.isrs, [INT_DONE, INT_DONE, INT_DONE, INT_DONE]);
  // Blocks never written read as zeros.
  assert.equal(cmd(s, NVME_OP_READ, 7, 1, 0x20_0000), NVME_SC_SUCCESS);
  assert.equal(s.m.ram.read32(0x20_0000), 0);
  assert.equal(s.dev.disk.touchedBytes(), 2 * 65536); // blocks 5-11 share a chunk
  s.m.check();
});

test("nvme: a PRP1 offset and 512-byte blocks; a chained PRP list of 1 MiB", () => {
  const s = setup("pc", 512);
  // 3 blocks = 1536 bytes from 0x600 into a page: they fit in PRP1's page.
  const small = pattern(1536, 4);
  s.m.ram.write(0x20_0600, small);
  assert.equal(cmd(s, NVME_OP_WRITE, 1, 3, 0x20_0600), NVME_SC_SUCCESS);
  assert.deepEqual(diskBytes(s, 1, 1536), small);
  // 12 blocks = 6144 bytes from 0xe00: 512 bytes in PRP1's page; the other 5632 need
  // two more pages, so PRP2 points to a list of them.
  const mid = pattern(6144, 5);
  scatter(s.m, [[0x30_0e00, 512], [0x31_0000, PAGE], [0x33_0000, 1536]], mid);
  list(s.m, 0x34_0000, [0x31_0000, 0x33_0000]);
  assert.equal(cmd(s, NVME_OP_WRITE, 40, 12, 0x30_0e00, 0x34_0000), NVME_SC_SUCCESS);
  assert.deepEqual(diskBytes(s, 40, 6144), mid);

  // 1 MiB (256 pages of 4 KiB in 2048 blocks) with the list starting 10 entries
  // before its page end: 9 data entries, then a pointer to the next list page.
  const s2 = setup();
  const data = pattern(MiB, 6);
  const pagesAt = Array.from({ length: 256 }, (_, i) => 0x100_0000 + ((i * 37) % 256) * PAGE);
  scatter(s2.m, pagesAt.map((p) => [p, PAGE]), data);
  const listAt = 0x200_0000 + PAGE - 80;
  list(s2.m, listAt, [...pagesAt.slice(1, 10), 0x201_0000]);
  list(s2.m, 0x201_0000, pagesAt.slice(10));
  assert.equal(cmd(s2, NVME_OP_WRITE, 0, 256, pagesAt[0]!, listAt), NVME_SC_SUCCESS);
  assert.deepEqual(diskBytes(s2, 0, MiB), data);
  assert.equal(s2.dev.dma.segments, 256 + 2); // data pages and the two list reads
});

test("nvme: 64-bit addresses reach RAM above 32 GiB", () => {
  const s = setup("big");
  const hiPage = 40 * GiB + 0x1234_5000, hiPage2 = 60 * GiB;
  const data = pattern(2 * PAGE, 9);
  scatter(s.m, [[hiPage, PAGE], [hiPage2, PAGE]], data);
  assert.equal(cmd(s, NVME_OP_WRITE, 3, 2, hiPage, hiPage2), NVME_SC_SUCCESS);
  assert.equal(s.rd(NVME_REG_PRP1_HI), 10);
  assert.equal(s.rd(NVME_REG_PRP1_LO), 0x1234_5000);
  assert.equal(cmd(s, NVME_OP_READ, 3, 2, 0x20_0000, 0x20_1000), NVME_SC_SUCCESS);
  assert.deepEqual(gather(s.m, [[0x20_0000, 2 * PAGE]]), data);
});

test("nvme: bad PRPs are recorded DMA faults and move no data", () => {
  type Case = [string, (s: Setup) => number, number, number, number];
  const cases: Case[] = [
    [
      "PRP1 not dword aligned",
      (s) => cmd(s, NVME_OP_READ, 0, 1, 0x20_0002),
      NVME_SC_PRP_OFFSET_INVALID,
      FAULT_ACCESS,
      0x20_0002,
    ],
    [
      "PRP2 with an offset",
      (s) => cmd(s, NVME_OP_READ, 0, 2, 0x20_0000, 0x30_0010),
      NVME_SC_PRP_OFFSET_INVALID,
      FAULT_ACCESS,
      0x30_0010,
    ],
    [
      "list pointer not qword aligned",
      (s) => cmd(s, NVME_OP_READ, 0, 3, 0x20_0000, 0x50_0004),
      NVME_SC_PRP_OFFSET_INVALID,
      FAULT_ACCESS,
      0x50_0004,
    ],
    [
      "list entry with an offset",
      (s) => {
        list(s.m, 0x50_0000, [0x30_0000, 0x31_0800]);
        return cmd(s, NVME_OP_READ, 0, 3, 0x20_0000, 0x50_0000);
      },
      NVME_SC_PRP_OFFSET_INVALID,
      FAULT_ACCESS,
      0x31_0800,
    ],
    [
      "data page in the MMIO hole",
      (s) => {
        list(s.m, 0x50_0000, [0x30_0000, 3 * GiB + 0x10_0000]);
        return cmd(s, NVME_OP_READ, 0, 3, 0x20_0000, 0x50_0000);
      },
      NVME_SC_DATA_TRANSFER_ERROR,
      FAULT_DECODE,
      3 * GiB + 0x10_0000,
    ],
    [
      "data page past the end of RAM",
      (s) => cmd(s, NVME_OP_READ, 0, 2, 0x20_0000, 8 * GiB),
      NVME_SC_DATA_TRANSFER_ERROR,
      FAULT_DECODE,
      8 * GiB,
    ],
    [
      "PRP list outside RAM",
      (s) => cmd(s, NVME_OP_READ, 0, 3, 0x20_0000, 0xa_0000),
      NVME_SC_DATA_TRANSFER_ERROR,
      FAULT_DECODE,
      0xa_0000,
    ],
  ];
  for (const [what, run, status, kind, addr] of cases) {
    for (const write of [false, true]) {
      const s = setup();
      s.dev.disk.write(0, pattern(3 * PAGE, 8), 0, 3 * PAGE); // disk content a read would move
      for (const p of [0x20_0000, 0x30_0000, 0x31_0000]) s.m.ram.fill(p, PAGE, 0xee);
      const diskBefore = diskBytes(s, 0, 3 * PAGE);
      const got = write
        ? (s.wr(NVME_REG_OPCODE, NVME_OP_WRITE), runAs(s, run, NVME_OP_WRITE))
        : run(s);
      assert.equal(got, status, what);
      assert.equal(s.rd(REG_FAULT_KIND), kind, what);
      assert.equal(s.rd(REG_FAULT_ADDR_LO) + s.rd(REG_FAULT_ADDR_HI) * 2 ** 32, addr, what);
      assert.deepEqual(s.isrs, [INT_ERROR], what);
      // Nothing moved either way.
      for (const p of [0x20_0000, 0x30_0000, 0x31_0000]) {
        assert.equal(s.m.ram.read32(p + 16), 0xeeeeeeee, `${what}: page ${p}`);
      }
      assert.deepEqual(diskBytes(s, 0, 3 * PAGE), diskBefore, what);
      assert.equal(s.dev.dma.faults, 1, what);
    }
  }
});

/** Runs a case built for READ as a WRITE command instead. */
function runAs(s: Setup, run: (s: Setup) => number, op: number): number {
  const wr = s.wr;
  const patched = {
    ...s,
    wr: (off: number, v: number) => wr(off, off === NVME_REG_OPCODE ? op : v),
  };
  return run(patched);
}

test("nvme: bad counts, ranges and opcodes complete with an error status", () => {
  const s = setup();
  assert.equal(cmd(s, NVME_OP_READ, 0, 0, 0x20_0000), NVME_SC_INVALID_FIELD);
  assert.equal(cmd(s, NVME_OP_READ, 0, NVME_MDTS + 1, 0x20_0000), NVME_SC_INVALID_FIELD);
  assert.equal(cmd(s, NVME_OP_READ, (1 << 20) - 1, 2, 0x20_0000), NVME_SC_LBA_OUT_OF_RANGE);
  assert.equal(cmd(s, NVME_OP_READ, 2 ** 40, 1, 0x20_0000), NVME_SC_LBA_OUT_OF_RANGE);
  assert.equal(s.rd(NVME_REG_LBA_HI), 256);
  assert.equal(cmd(s, 0x7f, 0, 1, 0x20_0000), NVME_SC_INVALID_OPCODE);
  assert.deepEqual(s.isrs, [INT_ERROR, INT_ERROR, INT_ERROR, INT_ERROR, INT_ERROR]);
  assert.equal(s.rd(NVME_REG_CQ_COUNT), 5);
  assert.equal(s.dev.dma.faults, 0);
  assert.throws(() => new SparseDisk(1024, 10), /blockSize/);
  assert.throws(() => new SparseDisk(4096, 0), /blocks/);
});

test("nvme: registers keep all 64 bits; an address past 2^53 faults, an LBA past the disk is out of range", () => {
  const s = setup();
  // PRP1 = 2^53 + 0x300000: the high word is 0x200000, which a 21-bit register would drop.
  const before = new Uint8Array(PAGE);
  s.m.ram.read(0x30_0000, before);
  s.dev.disk.write(0, pattern(PAGE, 4), 0, PAGE);
  s.wr(NVME_REG_PRP1_LO, 0x30_0000);
  s.wr(NVME_REG_PRP1_HI, 0x20_0000);
  s.wr(NVME_REG_PRP2_HI, 0xffff_ffff);
  s.wr(NVME_REG_LBA_HI, 0xffff_ffff);
  assert.deepEqual(
    [s.rd(NVME_REG_PRP1_HI), s.rd(NVME_REG_PRP2_HI), s.rd(NVME_REG_LBA_HI)],
    [0x20_0000, 0xffff_ffff, 0xffff_ffff],
    "a register reads back what was written",
  );
  const faults = s.dev.dma.faults;
  assert.equal(cmd(s, NVME_OP_READ, 0, 1, 2 ** 53 + 0x30_0000), NVME_SC_DATA_TRANSFER_ERROR);
  assert.equal(s.dev.dma.faults, faults + 1);
  assert.equal(s.rd(REG_FAULT_KIND), FAULT_ACCESS);
  const after = new Uint8Array(PAGE);
  s.m.ram.read(0x30_0000, after);
  assert.deepEqual(after, before, "nothing landed at 0x300000");
  // LBA_HI 0x200000: block 2^53, far past the disk, not block 0.
  s.wr(NVME_REG_LBA_LO, 0);
  assert.equal(cmd(s, NVME_OP_READ, 2 ** 53, 1, 0x30_0000), NVME_SC_LBA_OUT_OF_RANGE);
  assert.equal(s.rd(NVME_REG_LBA_HI), 0x20_0000);
  s.m.ram.read(0x30_0000, after);
  assert.deepEqual(after, before);
  // A PRP list entry past 2^53 faults the same way.
  list(s.m, 0x10_0000, [0x40_0000, 0x41_0000]);
  s.m.ram.write32(0x10_000c, 0x20_0000); // high word of the second entry
  assert.equal(cmd(s, NVME_OP_READ, 0, 3, 0x20_0000, 0x10_0000), NVME_SC_DATA_TRANSFER_ERROR);
  s.m.check();
});

test("nvme: by default a command completes later, on the clock, with the registers of its doorbell", async () => {
  const m = createMachine({ preset: "pc", ramSize: 64 * MiB });
  const dev = new NvmeModel(m, { blocks: 1024 });
  const rd = (off: number) => m.bus.read32(dev.base + off);
  const wr = (off: number, v: number) => m.bus.write32(dev.base + off, v);
  let interrupts = 0;
  m.irq.establish(dev.irq.line, () => {
    interrupts++;
    wr(REG_ISR, rd(REG_ISR));
  });
  wr(REG_IER, INT_DONE | INT_ERROR);
  dev.disk.write(5 * PAGE, pattern(PAGE, 8), 0, PAGE);
  wr(NVME_REG_OPCODE, NVME_OP_READ);
  wr(NVME_REG_LBA_LO, 5);
  wr(NVME_REG_COUNT, 1);
  wr(NVME_REG_PRP1_LO, 0x20_0000);
  wr(NVME_REG_CID, 7);
  wr(NVME_REG_DOORBELL, 1);
  // Reprogramming after the doorbell does not change the submitted command.
  wr(NVME_REG_LBA_LO, 6);
  wr(NVME_REG_PRP1_LO, 0x30_0000);
  assert.equal(rd(NVME_REG_CQ_COUNT), 0, "nothing has completed inside the store");
  assert.equal(dev.dma.inFlight, 1);
  assert.equal(interrupts, 0);
  await new Promise((r) => setTimeout(r, 0)); // the clock runs on the host's microtasks
  assert.equal(interrupts, 1);
  assert.equal(rd(NVME_REG_CQ_COUNT), 1);
  assert.equal(rd(NVME_REG_CQ_CID), 7);
  assert.equal(rd(NVME_REG_CQ_STATUS), NVME_SC_SUCCESS);
  assert.equal(dev.dma.inFlight, 0);
  assert.ok(m.clock.now >= NVME_LATENCY + PAGE);
  assert.deepEqual(gather(m, [[0x20_0000, PAGE]]), pattern(PAGE, 8));
  m.check();
});
