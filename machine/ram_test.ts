import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { Mulberry32 } from "../mm/random.ts";
import { Ram } from "./ram.ts";
import { hex, MachineError, MachineFault } from "./errors.ts";

const KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

// Two adjacent slots and one apart, 4 KiB chunks: every shape of boundary.
const SLOTS = [
  { base: 4096, size: 8192 },
  { base: 12288, size: 12288 },
  { base: 32768, size: 8192 },
];
const SPAN = 45056; // addresses tried: [0, SPAN)

function inRam(pa: number, len: number): boolean {
  for (let a = pa; a < pa + len; a++) {
    if (!SLOTS.some((s) => a >= s.base && a < s.base + s.size)) return false;
  }
  return true;
}

/** Reference memory: a Map of written bytes, zero elsewhere. */
class Reference {
  bytes = new Map<number, number>();
  get(a: number): number {
    return this.bytes.get(a) ?? 0;
  }
  set(a: number, v: number): void {
    this.bytes.set(a, v & 0xff);
  }
  le(pa: number, n: number): bigint {
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.get(pa + i));
    return v;
  }
  setLe(pa: number, n: number, v: bigint): void {
    for (let i = 0; i < n; i++) this.set(pa + i, Number((v >> BigInt(8 * i)) & 0xffn));
  }
}

function assertSame(ram: Ram, ref: Reference): void {
  for (const s of SLOTS) {
    const buf = new Uint8Array(s.size);
    ram.read(s.base, buf);
    for (let i = 0; i < s.size; i++) {
      if (buf[i] !== ref.get(s.base + i)) {
        assert.fail(`byte at 0x${(s.base + i).toString(16)}: ${buf[i]} != ${ref.get(s.base + i)}`);
      }
    }
  }
}

test("ram: random loads, stores and bulk operations match a reference across chunk and slot edges", () => {
  const rng = new Mulberry32(7);
  const ram = new Ram(SLOTS, { chunkSize: 4096 });
  const ref = new Reference();
  // Addresses cluster around the edges, where the work is.
  const edges = [0, 4096, 8192, 12288, 16384, 20480, 24576, 28672, 32768, 36864, 40960];
  const addr = (): number => {
    if (rng.below(4) === 0) return rng.below(SPAN);
    return Math.max(0, edges[rng.below(edges.length)]! + rng.below(24) - 12);
  };
  let faults = 0, ok = 0;
  for (let step = 0; step < 4000; step++) {
    const op = rng.below(11);
    const pa = addr();
    const sizes = [1, 2, 4, 8, 8];
    const n = op < 5 ? sizes[op]! : 1 + rng.below(op >= 8 ? 9000 : 40);
    let faulted = false;
    try {
      switch (op) {
        case 0:
        case 1:
        case 2:
        case 3: { // store of n bytes, then load it back through every width
          const v = n === 8
            ? (BigInt(rng.next()) << 32n) | BigInt(rng.next())
            : BigInt(rng.next() % 2 ** (8 * n));
          if (n === 1) ram.write8(pa, Number(v));
          else if (n === 2) ram.write16(pa, Number(v));
          else if (n === 4) ram.write32(pa, Number(v));
          else ram.write64(pa, v);
          assert.ok(inRam(pa, n), `store at ${pa} should have faulted`);
          ref.setLe(pa, n, v);
          break;
        }
        case 4: { // 64-bit plain-number store and loads
          const v = rng.next() * 2 ** 21 + (rng.next() & 0x1fffff);
          ram.write64n(pa, v);
          assert.ok(inRam(pa, 8));
          ref.setLe(pa, 8, BigInt(v));
          assert.equal(ram.read64n(pa), v);
          break;
        }
        case 5: { // bulk write
          const src = new Uint8Array(n);
          for (let i = 0; i < n; i++) src[i] = rng.next() & 0xff;
          ram.write(pa, src);
          assert.ok(inRam(pa, n));
          for (let i = 0; i < n; i++) ref.set(pa + i, src[i]!);
          break;
        }
        case 6: { // bulk read with an offset into the destination
          const dst = new Uint8Array(n + 3).fill(0xee);
          ram.read(pa, dst, 2, n);
          assert.ok(inRam(pa, n));
          assert.equal(dst[0], 0xee);
          assert.equal(dst[n + 2], 0xee);
          for (let i = 0; i < n; i++) assert.equal(dst[2 + i], ref.get(pa + i));
          break;
        }
        case 7: { // fill, zero or not
          const b = rng.below(2) ? 0 : rng.next() & 0xff;
          ram.fill(pa, n, b);
          assert.ok(inRam(pa, n));
          for (let i = 0; i < n; i++) ref.set(pa + i, b);
          break;
        }
        default: { // copy, overlapping often
          const src = rng.below(2) ? pa + rng.below(64) - 32 : addr();
          ram.copy(pa, Math.max(0, src), n);
          const s = Math.max(0, src);
          assert.ok(inRam(pa, n) && inRam(s, n));
          const tmp: number[] = [];
          for (let i = 0; i < n; i++) tmp.push(ref.get(s + i));
          for (let i = 0; i < n; i++) ref.set(pa + i, tmp[i]!);
        }
      }
      ok++;
    } catch (e) {
      if (!(e instanceof MachineFault)) throw e;
      faulted = true;
      faults++;
    }
    // Loads of every width at a random address agree with the reference.
    const q = addr();
    for (const w of [1, 2, 4, 8]) {
      if (!inRam(q, w)) {
        assert.throws(() => ram.read64(q), MachineFault);
        continue;
      }
      const want = ref.le(q, w);
      const got = w === 1
        ? BigInt(ram.read8(q))
        : w === 2
        ? BigInt(ram.read16(q))
        : w === 4
        ? BigInt(ram.read32(q))
        : ram.read64(q);
      assert.equal(got, want, `load of ${w} at ${q}`);
    }
    ram.check();
    if (faulted || step % 97 === 0) assertSame(ram, ref);
  }
  assert.ok(faults > 300 && ok > 2000, `faults ${faults}, ok ${ok}`);
  assertSame(ram, ref);
});

test("ram: a store that runs past RAM faults and writes no byte, even the ones in RAM", () => {
  const ram = new Ram(SLOTS, { chunkSize: 4096 });
  const before = ram.touchedBytes();
  // 24576 ends the second slot; 32768 starts the third.
  assert.throws(() => ram.write32(24574, 0x11223344), (e: unknown) => {
    assert.ok(e instanceof MachineFault);
    assert.equal(e.addr, 24574);
    assert.equal(e.size, 4);
    assert.equal(e.kind, "write");
    assert.match(e.message, /0x6000 is not RAM/);
    return true;
  });
  assert.throws(() => ram.write(24000, new Uint8Array(600).fill(1)), MachineFault);
  assert.throws(() => ram.fill(24000, 600, 9), MachineFault);
  assert.throws(() => ram.copy(24000, 4096, 600), MachineFault);
  assert.throws(() => ram.copy(4096, 24000, 600), (e: unknown) => {
    assert.ok(e instanceof MachineFault);
    assert.equal(e.kind, "read");
    return true;
  });
  assert.throws(() => ram.write64n(24572, 1), MachineFault);
  assert.equal(ram.touchedBytes(), before);
  assert.equal(ram.read8(24575), 0);
  assert.equal(ram.read32(24000), 0);
  ram.check();
});

test("ram: bad addresses and values are refused and change nothing", () => {
  const ram = new Ram(SLOTS, { chunkSize: 4096 });
  ram.write32(4096, 0xdeadbeef);
  for (const pa of [-4, 4096.5, NaN, Infinity]) {
    assert.throws(() => ram.read32(pa), MachineFault);
    assert.throws(() => ram.write32(pa, 1), MachineFault);
  }
  assert.throws(() => ram.read32(0), MachineFault); // first page is not RAM here
  assert.throws(() => ram.write32(4096, 2 ** 32), (e: unknown) => {
    assert.ok(e instanceof MachineError);
    assert.equal(e.code, "EINVAL");
    assert.match(e.message, /0x100000000/);
    return true;
  });
  assert.throws(() => ram.write8(4096, 256), MachineError);
  assert.throws(() => ram.write16(4096, 1.5), MachineError);
  assert.throws(() => ram.write64(4096, 1n << 64n), MachineError);
  assert.throws(() => ram.write64n(4096, -1), MachineError);
  assert.throws(() => ram.fill(4096, 4, 256), MachineError);
  assert.throws(() => ram.read(4096, new Uint8Array(4), 2, 4), MachineError);
  assert.equal(ram.read32(4096), 0xdeadbeef);
  ram.write32(8192, -1);
  assert.equal(ram.read32(8192), 0xffffffff);
  ram.write64(8200, -2n);
  assert.equal(ram.read64(8200), (1n << 64n) - 2n);
  assert.throws(() => ram.read64n(8200), (e: unknown) => {
    assert.ok(e instanceof MachineError);
    assert.equal(e.code, "ERANGE");
    return true;
  });
  ram.write64n(8200, Number.MAX_SAFE_INTEGER);
  assert.equal(ram.read64n(8200), Number.MAX_SAFE_INTEGER);
});

test("ram: hostile address and value types are refused on every path and change nothing", () => {
  // RAM at 0 with the load and store caches on chunk 0, so that a value
  // coerced to a small number would land in a cached chunk.
  const ram = new Ram([{ base: 0, size: 65536 }], { chunkSize: 4096 });
  ram.write32(0, 0x11223344);
  ram.write32(8, 0x55667788);
  assert.equal(ram.read32(0), 0x11223344);
  const touched = ram.touchedBytes();
  const before = new Uint8Array(65536);
  ram.read(0, before);
  const hostile: unknown[] = [8n, "8", "0", NaN, undefined, null, true, false, {}, [8]];
  const any = ram as unknown as Record<string, (...a: unknown[]) => unknown>;
  const named = (value: unknown) => (e: unknown) => {
    assert.ok(e instanceof MachineFault || e instanceof MachineError, `${e}`);
    const shown = hex(value);
    assert.ok(e.message.includes(shown), `${e.message} names ${shown}`);
    return true;
  };
  for (const pa of hostile) {
    for (const load of ["read8", "read16", "read32", "read64", "read64n"]) {
      assert.throws(() => any[load]!(pa), (e: unknown) => {
        assert.ok(e instanceof MachineFault, `${load}(${String(pa)}): ${e}`);
        return named(pa)(e);
      });
    }
    for (const [store, v] of [["write8", 1], ["write16", 1], ["write32", 1], ["write64", 1n]]) {
      assert.throws(() => any[store as string]!(pa, v), (e: unknown) => {
        assert.ok(e instanceof MachineFault, `${store}(${String(pa)}): ${e}`);
        return named(pa)(e);
      });
    }
    assert.throws(() => ram.write64n(pa as number, 1), MachineFault);
    assert.throws(() => ram.read(pa as number, new Uint8Array(4)), MachineFault);
    assert.throws(() => ram.write(pa as number, new Uint8Array(4)), MachineFault);
    assert.throws(() => ram.fill(pa as number, 4, 1), MachineFault);
    assert.throws(() => ram.readSg([pa as number, 4], 1, new Uint8Array(4)), MachineFault);
    assert.throws(() => ram.writeSg([pa as number, 4], 1, new Uint8Array(4)), MachineFault);
    assert.throws(() => ram.readSg([0, pa as number], 1, new Uint8Array(4)), MachineFault);
  }
  for (const v of [...hostile, 1.5, 2 ** 32, -(2 ** 31) - 1]) {
    const stores = ["write8", "write16", "write32"];
    if (!(typeof v === "number" && Number.isSafeInteger(v) && v >= 0)) stores.push("write64n");
    for (const store of stores) {
      assert.throws(() => any[store]!(0, v), (e: unknown) => {
        assert.ok(e instanceof MachineError && e.code === "EINVAL", `${store}(0, ${v}): ${e}`);
        return named(v)(e);
      });
    }
    if (typeof v !== "bigint") {
      assert.throws(() => ram.write64(0, v as bigint), MachineError);
    }
  }
  const after = new Uint8Array(65536);
  ram.read(0, after);
  assert.deepEqual(after, before);
  assert.equal(ram.touchedBytes(), touched);
  ram.check();
});

test("ram: slots must be page-aligned and disjoint", () => {
  assert.throws(() => new Ram([]), MachineError);
  assert.throws(() => new Ram([{ base: 100, size: 4096 }]), /page-aligned/);
  assert.throws(() => new Ram([{ base: 0, size: 0 }]), /slots\[0\]\.size/);
  assert.throws(
    () => new Ram([{ base: 0, size: 8192 }, { base: 4096, size: 4096 }]),
    /overlap/,
  );
  assert.throws(() => new Ram([{ base: 0, size: 4096 }], { chunkSize: 3000 }), /power of two/);
  assert.throws(() => new Ram([{ base: 0, size: 4096 }], { chunkSize: 2048 }), /at least 4096/);
  const r = new Ram([{ base: 8192, size: 4096 }, { base: 0, size: 4096 }]);
  assert.deepEqual(r.slots.map((s) => s.base), [0, 8192]);
  assert.equal(r.size, 8192);
});

test("ram: loads and zero fills of untouched memory materialise nothing", () => {
  const ram = new Ram([{ base: 0, size: 1 * GiB }]);
  assert.equal(ram.read32(12345678), 0);
  assert.equal(ram.read64(500 * MiB), 0n);
  const buf = new Uint8Array(200 * KiB).fill(7);
  ram.read(300 * MiB - 5, buf);
  assert.ok(buf.every((b) => b === 0));
  ram.fill(0, 64 * MiB, 0);
  ram.copy(100 * MiB, 0, 1 * MiB);
  assert.equal(ram.touchedBytes(), 0);
  ram.write8(70000, 1); // one 64 KiB chunk
  assert.equal(ram.touchedBytes(), 64 * KiB);
  assert.equal(ram.read8(70000), 1);
  ram.fill(65536, 65536, 0); // zeroing a written chunk does touch it
  assert.equal(ram.read8(70000), 0);
  assert.equal(ram.touchedBytes(), 64 * KiB);
  ram.check();
});

test("ram: a 64 GiB slot costs the host only the chunks written", () => {
  const before = process.memoryUsage().rss;
  const ram = new Ram([{ base: 4 * GiB, size: 64 * GiB }]);
  const top = 4 * GiB + 64 * GiB;
  ram.write32(top - 4, 0xcafef00d);
  ram.write64n(4 * GiB, 2 ** 52 + 3);
  ram.write(40 * GiB - 2, new Uint8Array([1, 2, 3, 4])); // spans two chunks
  const page = new Uint8Array(4096).fill(0x5a);
  ram.write(20 * GiB, page);
  ram.copy(33 * GiB, 20 * GiB, 4096);
  assert.equal(ram.read32(top - 4), 0xcafef00d);
  assert.equal(ram.read64n(4 * GiB), 2 ** 52 + 3);
  assert.equal(ram.read32(40 * GiB - 2), 0x04030201);
  assert.equal(ram.read8(33 * GiB + 4095), 0x5a);
  assert.equal(ram.touchedBytes(), 6 * 64 * KiB);
  assert.throws(() => ram.read8(top), MachineFault);
  ram.check();
  const grown = process.memoryUsage().rss - before;
  // The process is shared with test files running in parallel, so the bound is loose; what
  // it rules out is the guest's RAM being committed on the host.
  assert.ok(grown < 256 * MiB, `host memory grew by ${grown} bytes`);
});

test("ram: a check costs the chunks written, not the size of RAM", () => {
  const huge = new Ram([{ base: 0, size: 16 * 2 ** 40 }]);
  const small = new Ram([{ base: 0, size: 64 * MiB }]);
  for (const ram of [huge, small]) {
    for (let i = 0; i < 50; i++) ram.write32(i * 65536 * 7, i);
  }
  const t = performance.now();
  for (let i = 0; i < 20; i++) huge.check();
  const perCheck = (performance.now() - t) / 20;
  assert.ok(perCheck < 20, `a check of 16 TiB took ${perCheck} ms`);
  small.check(true);
  assert.equal(huge.touchedBytes(), 50 * 65536);
});

test("ram: copy between chunks of different banks and overlapping copies both ways", () => {
  // 16 MiB chunks: the first bank holds one chunk, so neighbours sit in different banks.
  const ram = new Ram([{ base: 0, size: 64 * MiB }], { chunkSize: 16 * MiB });
  const src = new Uint8Array(10000);
  for (let i = 0; i < src.length; i++) src[i] = (i * 7 + 3) & 0xff;
  ram.write(16 * MiB - 5000, src); // straddles chunks 0 and 1
  ram.write(48 * MiB, new Uint8Array(1).fill(1)); // materialise chunk 3 in another bank
  ram.copy(48 * MiB - 5000, 16 * MiB - 5000, 10000);
  const out = new Uint8Array(10000);
  ram.read(48 * MiB - 5000, out);
  assert.deepEqual(out, src);
  // Overlap, destination above and below.
  ram.copy(16 * MiB - 4990, 16 * MiB - 5000, 10000);
  ram.read(16 * MiB - 4990, out);
  assert.deepEqual(out, src);
  ram.copy(16 * MiB - 5000, 16 * MiB - 4990, 10000);
  ram.read(16 * MiB - 5000, out);
  assert.deepEqual(out, src);
  ram.check();
});

// Slots for scatter-gather: two adjacent (a segment may run from one into the
// other), a hole, a third; 64 KiB chunks, so a chunk holds 16 pages.
const SG_SLOTS = [
  { base: 0x10000, size: 0x30000 },
  { base: 0x40000, size: 0x20000 },
  { base: 0x80000, size: 0x10000 },
];
const SG_END = 0x90000;

function sgInRam(pa: number, len: number): boolean {
  if (len === 0) return true;
  return (pa >= 0x10000 && pa + len <= 0x60000) || (pa >= 0x80000 && pa + len <= SG_END);
}

test("ram: scatter-gather lists match a reference across pages, chunks and slots", () => {
  const rng = new Mulberry32(11);
  const ram = new Ram(SG_SLOTS);
  const shadow = new Uint8Array(SG_END); // what RAM should hold
  const segment = (): [number, number] => {
    const k = rng.below(10);
    if (k < 6) { // a whole page, mostly of a few chunks, so the same chunk comes back
      const chunk = [0x10000, 0x20000, 0x40000, 0x80000][rng.below(4)]!;
      return [chunk + rng.below(16) * 4096, 4096];
    }
    if (k < 8) { // any piece, often across a chunk or slot edge
      const len = 1 + rng.below(9000);
      const edge = [0x20000, 0x40000, 0x50000, 0x60000, 0x90000][rng.below(5)]!;
      return [edge - rng.below(len + 64), len];
    }
    if (k === 8) return [0x10000 + rng.below(0x50000), 0];
    return [rng.below(SG_END + 0x1000), 1 + rng.below(5000)]; // anywhere, often not RAM
  };
  let moved = 0, refused = 0;
  for (let step = 0; step < 1500; step++) {
    const nsegs = 1 + rng.below(6);
    const list = rng.below(2) ? new Float64Array(2 * nsegs) : new Array<number>(2 * nsegs);
    let total = 0, bad = -1;
    for (let i = 0; i < nsegs; i++) {
      const [pa, len] = segment();
      list[2 * i] = pa;
      list[2 * i + 1] = len;
      total += len;
      if (bad < 0 && !sgInRam(pa, len)) bad = i;
    }
    const offset = rng.below(8);
    const buf = new Uint8Array(offset + total + rng.below(8));
    for (let i = 0; i < buf.length; i++) buf[i] = rng.next() & 0xff;
    const before = buf.slice();
    const touched = ram.touchedBytes();
    const write = rng.below(3) === 0;
    if (bad >= 0) {
      assert.throws(
        () => write ? ram.writeSg(list, nsegs, buf, offset) : ram.readSg(list, nsegs, buf, offset),
        (e: unknown) => {
          assert.ok(e instanceof MachineFault, String(e));
          assert.equal(e.addr, list[2 * bad]);
          assert.equal(e.size, list[2 * bad + 1]);
          assert.equal(e.kind, write ? "write" : "read");
          return true;
        },
      );
      assert.deepEqual(buf, before);
      assert.equal(ram.touchedBytes(), touched);
      refused++;
    } else if (write) {
      assert.equal(ram.writeSg(list, nsegs, buf, offset), total);
      for (let i = 0, o = offset; i < nsegs; i++) {
        shadow.set(buf.subarray(o, o + list[2 * i + 1]!), list[2 * i]);
        o += list[2 * i + 1]!;
      }
      moved++;
    } else {
      assert.equal(ram.readSg(list, nsegs, buf, offset), total);
      assert.deepEqual(buf.subarray(0, offset), before.subarray(0, offset));
      assert.deepEqual(buf.subarray(offset + total), before.subarray(offset + total));
      for (let i = 0, o = offset; i < nsegs; i++) {
        const pa = list[2 * i]!, len = list[2 * i + 1]!;
        assert.deepEqual(buf.subarray(o, o + len), shadow.subarray(pa, pa + len), `segment ${i}`);
        o += len;
      }
      moved++;
    }
    // Plain stores and fills between lists: a chunk a list read as zeros may
    // now be materialised, and the caches must follow.
    if (rng.below(4) === 0) {
      const pa = [0x10000, 0x20000, 0x40000, 0x50000, 0x80000][rng.below(5)]! +
        rng.below(16) * 4096;
      const b = rng.next() & 0xff;
      ram.fill(pa, 4096, b);
      shadow.fill(b, pa, pa + 4096);
    }
    ram.check();
  }
  assert.ok(moved > 900 && refused > 100, `moved ${moved}, refused ${refused}`);
  const all = new Uint8Array(SG_END);
  for (const s of SG_SLOTS) ram.read(s.base, all, s.base, s.size);
  assert.deepEqual(all, shadow);
});

test("ram: a bad list, buffer or window is refused before anything moves", () => {
  const ram = new Ram(SG_SLOTS);
  ram.fill(0x10000, 0x10000, 0x11);
  const segs = new Float64Array([0x20000, 4096, 0x10000, 4096]);
  const buf = new Uint8Array(8192).fill(0xee);
  const einval = (f: () => unknown, re: RegExp) =>
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof MachineError, String(e));
      assert.equal(e.code, "EINVAL");
      assert.match(e.message, re);
      return true;
    });
  einval(() => ram.readSg(segs, 3, buf), /segment count 0x3/);
  einval(() => ram.readSg(segs, -1, buf), /segment count/);
  einval(() => ram.readSg(segs, 1.5, buf), /segment count/);
  einval(() => ram.readSg(null as unknown as number[], 1, buf), /segment count/);
  einval(() => ram.readSg(segs, 2, [] as unknown as Uint8Array), /dst must be a Uint8Array/);
  einval(() => ram.readSg(segs, 2, buf, -1), /dst window offset/);
  einval(() => ram.readSg(segs, 2, buf, 8193), /dst window offset/);
  einval(() => ram.readSg(segs, 2, buf, 1), /8192 bytes do not fit the 8191 bytes of dst/);
  einval(() => ram.writeSg(segs, 2, buf.subarray(1)), /do not fit the 8191 bytes of src/);
  for (
    const bad of [[0x20000 + 0.5, 16], [0x20000, -1], [0x20000, 0.5], [NaN, 16], [-4096, 4096]]
  ) {
    assert.throws(() => ram.writeSg([0x10000, 16, ...bad], 2, buf), MachineFault);
  }
  assert.ok(buf.every((b) => b === 0xee));
  assert.equal(ram.read8(0x10000), 0x11);
  assert.equal(ram.touchedBytes(), 64 * KiB);
  // Empty lists and empty segments are fine, and move nothing.
  assert.equal(ram.readSg(segs, 0, buf), 0);
  assert.equal(ram.writeSg([SG_END + 4096, 0], 1, buf), 0);
  assert.ok(buf.every((b) => b === 0xee));
  assert.equal(ram.touchedBytes(), 64 * KiB);
  ram.check();
});

test("ram: whole pages gathered out of order from one chunk, then from fresh chunks", () => {
  const ram = new Ram([{ base: 0, size: 4 * MiB }]);
  // Pages of one chunk in descending order, as a page allocator hands them out.
  const segs = new Float64Array(32);
  for (let i = 0; i < 16; i++) {
    segs[2 * i] = 0x30000 + (15 - i) * 4096;
    segs[2 * i + 1] = 4096;
  }
  const dst = new Uint8Array(65536);
  assert.equal(ram.readSg(segs, 16, dst), 65536); // never written: zeros, nothing touched
  assert.ok(dst.every((b) => b === 0));
  assert.equal(ram.touchedBytes(), 0);
  for (let p = 0; p < 16; p++) ram.fill(0x30000 + p * 4096, 4096, p + 1);
  for (let round = 0; round < 2; round++) {
    assert.equal(ram.readSg(segs, 16, dst), 65536);
    for (let i = 0; i < 16; i++) assert.equal(dst[i * 4096 + 4095], 16 - i, `page ${i}`);
    ram.check();
  }
  // Same offsets in another chunk: the cache of the first must not answer.
  for (let i = 0; i < 16; i++) segs[2 * i]! += 0x100000;
  ram.fill(0x130000, 65536, 0x77);
  assert.equal(ram.readSg(segs, 16, dst), 65536);
  assert.ok(dst.every((b) => b === 0x77));
  ram.check();
});
