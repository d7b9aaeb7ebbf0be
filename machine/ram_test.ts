import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { Mulberry32 } from "../mm/random.ts";
import { Ram } from "./ram.ts";
import { MachineError, MachineFault } from "./errors.ts";

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
    return Math.max(0, edges[rng.below(edges.length)] + rng.below(24) - 12);
  };
  let faults = 0, ok = 0;
  for (let step = 0; step < 4000; step++) {
    const op = rng.below(11);
    const pa = addr();
    const sizes = [1, 2, 4, 8, 8];
    const n = op < 5 ? sizes[op] : 1 + rng.below(op >= 8 ? 9000 : 40);
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
          for (let i = 0; i < n; i++) ref.set(pa + i, src[i]);
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
          for (let i = 0; i < n; i++) ref.set(pa + i, tmp[i]);
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
