import { test } from "node:test";
import assert from "node:assert/strict";
import { Mulberry32 } from "../mm/random.ts";
import { Ram } from "./ram.ts";
import {
  DMA_24BIT,
  DMA_64BIT,
  type DmaConstraints,
  dmaLimits,
  DmaPort,
  listProblem,
  segmentProblem,
} from "./dma.ts";
import { MachineError } from "./errors.ts";

const KiB = 1024, MiB = 1024 * KiB;

/** 16 MiB of RAM with a hole at [1 MiB, 2 MiB). */
function isaRam(): Ram {
  return new Ram([{ base: 0, size: MiB }, { base: 2 * MiB, size: 30 * MiB }], {
    chunkSize: 4096,
  });
}

const ISA: DmaConstraints = {
  maxAddress: DMA_24BIT,
  alignment: 16,
  boundary: 64 * KiB,
  maxSegments: 4,
  maxSegmentSize: 32 * KiB,
};

function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

test("dma: every broken constraint is an access fault that writes nothing", () => {
  const ram = isaRam();
  const port = new DmaPort(ram, "isa0", ISA);
  const cases: [number, number, RegExp][] = [
    [0x20008, 64, /not 16-byte aligned/],
    [0x2fff0, 32, /crosses a 0x10000 boundary/],
    [0x40000, 32 * KiB + 16, /exceeds the maximum of 32768/],
    [16 * MiB - 16, 32, /past the device's last address 0xffffff/],
    [16 * MiB, 16, /past the device's last address/],
    [0x40000, 0, /not positive/],
    [0x40000 + 0.5, 16, /not a non-negative integer/],
  ];
  let n = 0;
  for (const [pa, len, re] of cases) {
    assert.equal(port.write(pa, pattern(Math.max(len, 1)), 0, len), false, `write at ${pa}`);
    n++;
    assert.equal(port.faults, n);
    assert.equal(port.lastFault?.kind, "access");
    assert.equal(port.lastFault?.op, "write");
    assert.equal(port.lastFault?.addr, pa);
    assert.match(port.lastFault!.reason, re);
  }
  assert.equal(port.fill(0x2fff0, 32, 0xff), false);
  assert.equal(port.read(0x20008, new Uint8Array(64)), false);
  assert.equal(port.lastFault?.op, "read");
  assert.equal(ram.touchedBytes(), 0); // not one byte reached RAM
  assert.equal(port.accessFaults, n + 2);
  assert.equal(port.transfers, 0);
  assert.equal(port.faultLog().length, n + 2);
  port.check();
});

test("dma: an address that is not RAM is a decode fault", () => {
  const ram = isaRam();
  const port = new DmaPort(ram, "isa0", ISA);
  assert.equal(port.write(MiB + 0x100, pattern(64)), false);
  assert.equal(port.lastFault?.kind, "decode");
  assert.match(port.lastFault!.reason, /0x100100 is not RAM/);
  const wide = new DmaPort(ram, "wide", { maxAddress: DMA_24BIT });
  assert.equal(wide.write(MiB - 32, pattern(64)), false); // runs into the hole
  assert.equal(wide.lastFault?.kind, "decode");
  assert.match(wide.lastFault!.reason, /0x100000 is not RAM/);
  assert.equal(port.decodeFaults, 1);
  assert.equal(ram.touchedBytes(), 0);
});

test("dma: transfers that respect the constraints move the bytes and are counted", () => {
  const ram = isaRam();
  const port = new DmaPort(ram, "isa0", ISA);
  const src = pattern(32 * KiB, 5);
  assert.ok(port.write(0x30000, src));
  const back = new Uint8Array(32 * KiB);
  assert.ok(port.read(0x30000, back));
  assert.deepEqual(back, src);
  assert.ok(port.fill(0x2fff0, 16, 0xab)); // ends exactly at the boundary
  assert.equal(ram.read32(0x2fffc), 0xabababab);
  assert.deepEqual(port.counters(), {
    transfers: 3,
    segments: 3,
    bytes: 64 * KiB + 16,
    faults: 0,
    decodeFaults: 0,
    accessFaults: 0,
    translationFaults: 0,
  });
  assert.equal(port.lastFault, null);
  port.check();
});

test("dma: scatter-gather checks the whole list before moving any segment", () => {
  const ram = isaRam();
  const port = new DmaPort(ram, "isa0", ISA);
  const src = pattern(3000, 9);
  const segs = new Float64Array([0x50000, 1000, 0x60010, 1000, 0x70020, 1000]);
  assert.equal(port.writeSg(segs, 3, src), 3000);
  const out = new Uint8Array(3004);
  assert.equal(port.readSg(segs, 3, out, 4), 3000);
  assert.deepEqual(out.subarray(4), src);
  assert.equal(ram.read8(0x60010), src[1000]);
  assert.equal(port.segments, 6);

  const bad = (list: number[], n: number, re: RegExp, kind = "access") => {
    const before = ram.touchedBytes();
    const sample = ram.read32(0x50000);
    assert.equal(port.writeSg(list, n, pattern(4096, 3)), -1);
    assert.equal(port.lastFault?.kind, kind);
    assert.match(port.lastFault!.reason, re);
    assert.equal(ram.touchedBytes(), before);
    assert.equal(ram.read32(0x50000), sample); // the good first segment was not written
  };
  bad([0x50000, 100, 0x80004, 100], 2, /aligned/);
  bad([0x50000, 100, 0x8fff0, 100], 2, /boundary/);
  bad([0x50000, 16, 0x51000, 16, 0x52000, 16, 0x53000, 16, 0x54000, 16], 5, /5 segments exceed/);
  bad([0x50000, 100, MiB + 0x100, 100], 2, /not RAM/, "decode");
  bad([0x50000, 4000, 0x90000, 4000], 2, /8000 bytes exceeds the 4096-byte buffer/);
  bad([0x50000, 100], 2, /segment count/);
  bad([0x50000, 100], 0, /segment count/);
  port.check();
});

test("dma: random segments agree with the constraints computed by hand", () => {
  const rng = new Mulberry32(42);
  const ram = isaRam();
  const port = new DmaPort(ram, "r", ISA);
  const shadow = new Uint8Array(32 * MiB); // what RAM should hold
  const buf = new Uint8Array(40 * KiB);
  let moved = 0;
  for (let step = 0; step < 3000; step++) {
    const pa = rng.below(4) === 0 ? rng.below(20 * MiB) : (rng.below(256) * 64 * KiB +
      (rng.below(2) ? rng.below(64) * 16 : 64 * KiB - rng.below(64) * 16)) & 0x1ffffff;
    const len = 1 + rng.below(36 * KiB);
    const legal = pa % 16 === 0 && len <= 32 * KiB && pa + len - 1 <= DMA_24BIT &&
      Math.floor(pa / 65536) === Math.floor((pa + len - 1) / 65536);
    const inRam = pa + len <= MiB || (pa >= 2 * MiB && pa + len <= 32 * MiB);
    for (let i = 0; i < len; i++) buf[i] = rng.next() & 0xff;
    const faultsBefore = port.faults;
    const ok = port.write(pa, buf, 0, len);
    assert.equal(ok, legal && inRam, `write ${pa}+${len}`);
    if (ok) {
      shadow.set(buf.subarray(0, len), pa);
      moved++;
    } else {
      assert.equal(port.faults, faultsBefore + 1);
      assert.equal(port.lastFault!.kind, legal ? "decode" : "access");
    }
    if (step % 100 === 99) {
      for (let a = 0; a < 16 * MiB; a += 4093) {
        if (a >= MiB && a < 2 * MiB) continue;
        assert.equal(ram.read8(a), shadow[a], `byte at ${a}`);
      }
    }
    port.check();
  }
  assert.ok(moved > 300 && port.faults > 1000, `moved ${moved}, faults ${port.faults}`);
});

test("dma: constraints are validated when a port is made", () => {
  const ram = isaRam();
  assert.throws(() => new DmaPort(ram, "x", { maxAddress: -1 }), /maxAddress/);
  assert.throws(
    () => new DmaPort(ram, "x", { maxAddress: DMA_24BIT, alignment: 3 }),
    /power of two/,
  );
  assert.throws(() => new DmaPort(ram, "x", { maxAddress: DMA_24BIT, boundary: 100 }), /boundary/);
  assert.throws(
    () => new DmaPort(ram, "x", { maxAddress: DMA_24BIT, alignment: 4096, boundary: 1024 }),
    (e: unknown) => e instanceof MachineError && /smaller than alignment/.test(e.message),
  );
  assert.throws(
    () => new DmaPort(ram, "x", { maxAddress: DMA_24BIT, maxSegments: 0 }),
    /maxSegments/,
  );
  assert.deepEqual(dmaLimits({ maxAddress: 255 }), {
    minAddress: 0,
    maxAddress: 255,
    alignment: 1,
    boundary: 0,
    maxSegments: Number.MAX_SAFE_INTEGER,
    maxSegmentSize: Number.MAX_SAFE_INTEGER,
    maxTransfer: Number.MAX_SAFE_INTEGER,
  });
  assert.equal(dmaLimits({}).maxAddress, DMA_64BIT);
  assert.throws(
    () => dmaLimits({ minAddress: 4096, maxAddress: 4095 }),
    /maxAddress 0xfff is below minAddress 0x1000/,
  );
  // A segment cut at the longest size would start misaligned.
  assert.throws(
    () => dmaLimits({ alignment: 512, maxSegmentSize: 1000 }),
    /maxSegmentSize 1000 is not a multiple of alignment 512/,
  );
  assert.throws(() => dmaLimits({ maxTransfer: 0 }), /maxTransfer/);
  for (const bad of [null, 5, "x"]) {
    assert.throws(() => dmaLimits(bad as unknown as DmaConstraints), /must be an object/);
  }
});

test("dma: the lowest address and the longest transfer are checked too", () => {
  const ram = isaRam();
  const port = new DmaPort(ram, "hi", { minAddress: 4 * MiB, maxTransfer: 8192 });
  assert.equal(port.write(4 * MiB - 16, pattern(32)), false);
  assert.match(port.lastFault!.reason, /starts below the device's first address 0x400000/);
  assert.equal(port.write(4 * MiB, pattern(8193)), false);
  assert.match(
    port.lastFault!.reason,
    /transfer of 8193 bytes exceeds the device's largest of 8192/,
  );
  assert.equal(port.writeSg([4 * MiB, 4096, 5 * MiB, 4097], 2, pattern(9000)), -1);
  assert.match(port.lastFault!.reason, /transfer of 8193 bytes exceeds/);
  assert.equal(port.writeSg([4 * MiB, 4096, 5 * MiB, 4096], 2, pattern(9000)), 8192);
  assert.equal(port.faults, 3);
  assert.equal(
    listProblem(port.limits, [4 * MiB, 4096, 4 * MiB - 4096, 16], 2),
    "segment 0x3ff000+0x10 starts below the device's first address 0x400000",
  );
  assert.equal(listProblem(port.limits, [4 * MiB, 4096], 1), null);
  assert.equal(
    segmentProblem(dmaLimits(ISA), 0x2fff0, 32),
    "segment 0x2fff0+0x20 crosses a 0x10000 boundary",
  );
  port.check();
});

test("dma: a device-facing call given any value records a fault and never throws", () => {
  const ram = isaRam();
  const port = new DmaPort(ram, "isa0", ISA);
  const src = pattern(64);
  const lists: unknown[][] = [
    [0x50000n, 16],
    [0x50000, 16n],
    ["0x50000", 16],
    [null, 16],
    [undefined, 16],
    [true, 16],
    [0x50000, NaN],
  ];
  let n = 0;
  for (const list of lists) {
    assert.equal(port.writeSg(list as number[], 1, src), -1, String(list));
    if (n === 0) assert.match(port.lastFault!.reason, /0x50000 is not a non-negative integer/);
    assert.equal(port.readSg(list as number[], 1, src), -1);
    assert.equal(port.write(list[0] as number, src, 0, list[1] as number), false);
    n += 3;
    assert.equal(port.faults, n);
    assert.equal(port.lastFault!.kind, "access");
  }
  for (const count of [1n, "1", null, undefined, 1.5]) {
    assert.equal(port.writeSg([0x50000, 16], count as number, src), -1);
    assert.match(port.lastFault!.reason, /segment count/);
  }
  assert.equal(port.writeSg(null as unknown as number[], 1, src), -1);
  assert.equal(ram.touchedBytes(), 0);
  port.check();
});

test("dma: segments that follow one another in RAM move as one run", () => {
  const ram = isaRam();
  const port = new DmaPort(ram, "nvme", { alignment: 4, boundary: 4096, maxSegmentSize: 4096 });
  const calls: number[] = [];
  const readSg = ram.readSg.bind(ram);
  ram.readSg = (segs, nsegs, dst, offset) => {
    calls.push(nsegs);
    return readSg(segs, nsegs, dst, offset);
  };
  const len = 5 * 4096 - 100, src = pattern(len, 3);
  ram.write(0x40064, src, 0, 4 * 4096 - 100);
  ram.write(0x80000, src, 4 * 4096 - 100, 4096);
  // Five page pieces, the first four contiguous: two runs.
  const segs = [0x40064, 4096 - 100, 0x41000, 4096, 0x42000, 4096, 0x43000, 4096, 0x80000, 4096];
  const out = new Uint8Array(len);
  assert.equal(port.readSg(segs, 5, out), len);
  assert.deepEqual(calls, [2]);
  assert.deepEqual(out, src);
  assert.equal(port.segments, 5, "the port counts the device's segments, not the runs");
  // A run that leaves RAM is a decode fault naming the segment, not the run.
  const bad = [MiB - 8192, 4096, MiB - 4096, 4096, MiB, 4096];
  assert.equal(port.readSg(bad, 3, out), -1);
  assert.equal(port.lastFault!.kind, "decode");
  assert.equal(port.lastFault!.addr, MiB);
  assert.equal(port.lastFault!.len, 4096);
  port.check();
});

test("dma: a monitor is told of every transfer that moved data, and of nothing else", () => {
  const ram = isaRam();
  const port = new DmaPort(ram, "isa0", ISA);
  const seen: string[] = [];
  port.monitor = {
    transferred(p, op, segs, nsegs) {
      const list = [];
      for (let i = 0; i < 2 * nsegs; i++) list.push(segs[i]!.toString(16));
      seen.push(`${p.name} ${op} ${list.join(" ")}`);
    },
  };
  assert.ok(port.write(0x30000, pattern(16)));
  assert.ok(port.read(0x30000, new Uint8Array(16)));
  assert.ok(port.fill(0x30010, 16, 1));
  assert.equal(port.writeSg([0x50000, 16, 0x60000, 32], 2, pattern(48)), 48);
  assert.equal(port.readSg([0x50000, 16], 1, new Uint8Array(16)), 16);
  assert.equal(port.write(0x30008, pattern(16)), false);
  assert.equal(port.writeSg([0x50000, 16, MiB, 16], 2, pattern(48)), -1);
  assert.deepEqual(seen, [
    "isa0 write 30000 10",
    "isa0 read 30000 10",
    "isa0 write 30010 10",
    "isa0 write 50000 10 60000 20",
    "isa0 read 50000 10",
  ]);
});

test("dma: random lists fault exactly where the constraints and RAM say, and move nothing then", () => {
  const rng = new Mulberry32(5);
  const ram = isaRam();
  const shadow = new Uint8Array(32 * MiB);
  const odd = [NaN, Infinity, -16, 0.5, 16.5, -0, 2 ** 53, MiB + 0x40];
  for (let round = 0; round < 40; round++) {
    const alignment = 1 << rng.below(6);
    const c: DmaConstraints = {
      maxAddress: [DMA_24BIT, 20 * MiB - 1, 32 * MiB - 1][rng.below(3)]!,
      alignment,
      boundary: rng.below(3) === 0 ? 0 : Math.max(alignment, 256 << rng.below(10)),
      maxSegments: 2 + rng.below(6),
      maxSegmentSize: 64 << rng.below(12),
    };
    const L = dmaLimits(c);
    const port = new DmaPort(ram, `r${round}`, c);
    for (let step = 0; step < 50; step++) {
      const nsegs = 1 + rng.below(4);
      const list = rng.below(2) ? new Float64Array(2 * nsegs) : new Array<number>(2 * nsegs);
      for (let i = 0; i < nsegs; i++) {
        const b = L.boundary || 64 * KiB;
        const k = rng.below(24);
        let pa: number, len: number;
        if (k === 0) { // anything at all
          pa = odd[rng.below(odd.length)]!;
          len = rng.below(2) ? odd[rng.below(odd.length)]! : 1 + rng.below(4096);
        } else if (k < 3) { // just below a boundary, often running over it
          pa = b * (1 + rng.below(300)) - alignment * (1 + rng.below(8));
          len = 1 + rng.below(16 * alignment + 32);
        } else if (k === 3) { // ending at the top of the device's reach, or a byte either side
          const j = 1 + rng.below(64);
          pa = L.maxAddress + 1 - alignment * j;
          len = Math.max(1, alignment * j + rng.below(3) - 1);
        } else if (k < 6) { // at an end of RAM or of the hole
          pa = [MiB, 2 * MiB, 32 * MiB][rng.below(3)]! - alignment * (1 + rng.below(8));
          len = 1 + rng.below(16 * alignment + 32);
        } else { // aligned, inside a boundary window, now and then in the hole
          const off = alignment * rng.below(b / alignment);
          pa = b * rng.below(Math.floor(32 * MiB / b)) + off;
          len = 1 + rng.below(Math.min(L.maxSegmentSize + 8, b - off, 8 * KiB));
        }
        list[2 * i] = pa;
        list[2 * i + 1] = len;
      }
      // The expected verdict, computed the slow way, in the order the port checks.
      let kind: "access" | "decode" | null = null, at = -1, total = 0;
      if (nsegs > L.maxSegments) kind = "access";
      for (let i = 0; kind === null && i < nsegs; i++) {
        const pa = list[2 * i]!, len = list[2 * i + 1]!;
        const legal = Number.isInteger(pa) && pa >= 0 && Number.isInteger(len) && len >= 1 &&
          pa % L.alignment === 0 && len <= L.maxSegmentSize && pa + len - 1 <= L.maxAddress &&
          (L.boundary === 0 ||
            Math.floor(pa / L.boundary) === Math.floor((pa + len - 1) / L.boundary));
        if (!legal) [kind, at] = ["access", pa];
        total += len;
      }
      const room = 24 * KiB;
      if (kind === null && total > room) [kind, at] = ["access", list[0]!];
      for (let i = 0; kind === null && i < nsegs; i++) {
        const pa = list[2 * i]!, len = list[2 * i + 1]!;
        if (!(pa + len <= MiB || (pa >= 2 * MiB && pa + len <= 32 * MiB))) {
          [kind, at] = ["decode", pa];
        }
      }
      const buf = new Uint8Array(room);
      for (let i = 0; i < room; i++) buf[i] = rng.next() & 0xff;
      const before = buf.slice();
      const touched = ram.touchedBytes();
      const write = rng.below(2) === 0;
      const got = write ? port.writeSg(list, nsegs, buf) : port.readSg(list, nsegs, buf);
      if (kind !== null) {
        assert.equal(got, -1, `list ${Array.from(list)}`);
        assert.equal(port.lastFault!.kind, kind, port.lastFault!.reason);
        if (nsegs <= L.maxSegments) assert.ok(Object.is(port.lastFault!.addr, at));
        assert.deepEqual(buf, before);
        assert.equal(ram.touchedBytes(), touched);
      } else {
        assert.equal(got, total, `list ${Array.from(list)}`);
        for (let i = 0, o = 0; i < nsegs; i++) {
          const pa = list[2 * i]!, len = list[2 * i + 1]!;
          if (write) shadow.set(buf.subarray(o, o + len), pa);
          else assert.deepEqual(buf.subarray(o, o + len), shadow.subarray(pa, pa + len));
          o += len;
        }
      }
      port.check();
    }
  }
  ram.check();
});

test("dma: a buffer on a whole RAM chunk is gathered whole and byte for byte", () => {
  const ram = new Ram([{ base: 0, size: 4 * MiB }]); // 64 KiB chunks
  const port = new DmaPort(ram, "nvme", { alignment: 4, boundary: 4096, maxSegmentSize: 4096 });
  const data = pattern(3 * 65536, 11);
  ram.write(0x10000, data); // chunks 1, 2 and 3, all materialised
  for (
    const [at, len] of [[0x20000, 65536], [0x1f000, 65536 + 8192], [0x10000, 3 * 65536]] as const
  ) {
    const segs: number[] = [];
    for (let a = at; a < at + len; a += 4096) segs.push(a, 4096);
    const out = new Uint8Array(len);
    assert.equal(port.readSg(segs, len / 4096, out), len);
    assert.deepEqual(out, data.subarray(at - 0x10000, at - 0x10000 + len), `${at}+${len}`);
  }
  // A chunk never written reads as zeros.
  const zeros = new Uint8Array(65536).fill(1);
  const fresh: number[] = [];
  for (let a = 0x200000; a < 0x210000; a += 4096) fresh.push(a, 4096);
  assert.equal(port.readSg(fresh, 16, zeros), 65536);
  assert.ok(zeros.every((b) => b === 0));
  ram.check();
});
